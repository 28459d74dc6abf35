"""``load_dataset`` and ``list_datasets``: one entry point for named sets and user files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from aekit.data.dataset import Dataset, DatasetInfo
from aekit.data.named import NAMED_SETS, load_named, named_info
from aekit.data.userdata import USER_FORMATS, load_user_dataset
from aekit.errors import DataError, DataFileError, DatasetNotFoundError

__all__ = ["DATASET_NAMES", "Dataset", "DatasetInfo", "list_datasets", "load_dataset"]

DATASET_NAMES: tuple[str, ...] = tuple(NAMED_SETS)
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}


def canonical_name(name: str) -> str | None:
    """The canonical named-set name for ``name`` (case-insensitive, aliases), else None."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in NAMED_SETS else None


def _looks_like_path(text: str) -> bool:
    return any(sep in text for sep in ("/", "\\", os.sep)) or bool(Path(text).suffix)


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    download: bool = True,
    data_home: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    test_size: float = 0.2,
    random_state: int = 0,
    size: Sequence[int] | None = None,
    channels: int | None = None,
) -> Dataset:
    """Load a named data set or the user's data.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` (alias ``"fashion_mnist"``), or a path:
        a folder of images (of class subfolders), an image, a ``.npy`` or a ``.npz`` file.
        Names win over same-named folders; write ``./mnist`` for a folder.
    download : bool, default=True
        Download a missing MNIST / Fashion-MNIST into the user cache (SHA-256 verified).
        ``AEKIT_OFFLINE=1`` turns downloading off as well.
    data_home : str or path-like, optional
        Folder holding ``<name>/`` with the IDX files; defaults to ``$AEKIT_DATA_HOME``.
    mirrors : sequence of str, optional
        Base URLs to download from instead of ``named.MIRRORS`` / ``$AEKIT_MNIST_URL`` /
        ``$AEKIT_FASHION_MNIST_URL``.
    test_size : float, default=0.2
        Test fraction for data without a fixed test split (digits and user data).
    random_state : int, default=0
        Seed of that split.
    size : (int, int), optional
        Resize user images to ``(H, W)``.
    channels : {1, 3}, optional
        Convert user images to grayscale or RGB.

    Returns
    -------
    Dataset
        Images as float32 ``(N, C, H, W)`` in [0, 1] (2-D user tables stay ``(N, D)``),
        labels as int64 or None.

    Raises
    ------
    DatasetNotFoundError
        Unknown name, or a named set that is absent and cannot be downloaded.
    ChecksumError
        A downloaded file has the wrong SHA-256 (nothing is kept).
    DataFileError, DataError
        Missing, corrupt or unusable user files.
    """
    text = os.fspath(name_or_path)
    name = canonical_name(text) if isinstance(name_or_path, str) else None
    if name is not None:
        return load_named(
            name,
            download=download,
            data_home=data_home,
            mirrors=mirrors,
            test_size=test_size,
            random_state=random_state,
        )
    path = Path(text)
    if path.exists():
        try:
            return load_user_dataset(
                path, test_size=test_size, random_state=random_state, size=size, channels=channels
            )
        except MemoryError as err:
            size_note = f" ({path.stat().st_size / 2**30:.1f} GB on disk)" if path.is_file() else ""
            raise DataError(
                f"{path}{size_note} does not fit in this process's memory ({err}); stream it batch by batch "
                "instead: save it as a .npy and pass --stream (aekit train), or use aekit.data.streaming"
            ) from None
    if _looks_like_path(text):
        raise DataFileError(f"{path} does not exist; expected {USER_FORMATS}")
    raise DatasetNotFoundError(
        f"unknown dataset {text!r}: known names are {', '.join(DATASET_NAMES)} "
        f"(alias fashion_mnist); or pass the path of {USER_FORMATS}"
    )


def list_datasets(data_home: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """Describe the named data sets and where each is present, without loading them.

    Parameters
    ----------
    data_home : str or path-like, optional
        As in ``load_dataset``; defaults to ``$AEKIT_DATA_HOME``.

    Returns
    -------
    list of DatasetInfo
        ``found_at`` is None when the set would have to be downloaded.
    """
    return [named_info(name, data_home) for name in DATASET_NAMES]
