"""The named data sets: digits (bundled with scikit-learn), MNIST and Fashion-MNIST (IDX).

IDX sets are looked up in ``$AEKIT_DATA_HOME/<name>/``, then the user cache
(``$XDG_CACHE_HOME/aekit/<name>`` or ``~/.cache/aekit/<name>``), then system folders (Debian's
``dataset-fashion-mnist`` package); when absent everywhere they are downloaded into the user
cache with SHA-256 verification, unless ``download=False`` or ``AEKIT_OFFLINE=1``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.data.dataset import Dataset, DatasetInfo, split_train_test
from aekit.data.download import download_file, is_offline
from aekit.data.idx import read_idx
from aekit.data.preprocess import to_float01
from aekit.errors import ChecksumError, DataFileError, DatasetNotFoundError

__all__ = [
    "IDX_FILES",
    "MIRRORS",
    "NAMED_SETS",
    "SHA256",
    "SYSTEM_DIRS",
    "URL_ENV",
    "cache_dir",
    "load_named",
    "named_info",
]

# split part -> file name (also accepted without ".gz")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

# Base URLs, tried in order. An environment variable in URL_ENV (comma-separated URLs)
# replaces the list, and so does load_dataset(..., mirrors=[...]).
MIRRORS: dict[str, list[str]] = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
URL_ENV = {"mnist": "AEKIT_MNIST_URL", "fashion-mnist": "AEKIT_FASHION_MNIST_URL"}
SYSTEM_DIRS: dict[str, list[str]] = {"fashion-mnist": ["/usr/share/datasets/fashion-mnist"]}
_SYSTEM_FIX = {"fashion-mnist": "apt-get install -y dataset-fashion-mnist (Debian/Ubuntu)"}

# SHA-256 of the upstream .gz files. MNIST: the published values, equal to the files in
# shared/datasets/mnist (see its PROVENANCE.md). Fashion-MNIST: the values published with
# torchvision's prototype datasets and TensorFlow-style loaders for the zalando S3 files
# (upstream gz MD5s 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...). Debian's re-gzipped
# copies differ in their gz bytes; they are found on disk, never downloaded, so not checked.
_SHA256SUMS = {  # sha256sum format
    "mnist": """
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
""",
    "fashion-mnist": """
3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84  train-images-idx3-ubyte.gz
a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845  train-labels-idx1-ubyte.gz
346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073  t10k-images-idx3-ubyte.gz
67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5  t10k-labels-idx1-ubyte.gz
""",
}
SHA256: dict[str, dict[str, str]] = {
    name: {file: digest for digest, file in map(str.split, text.strip().splitlines())}
    for name, text in _SHA256SUMS.items()
}


@dataclass(frozen=True)
class NamedSet:
    """Static facts about a named data set."""

    name: str
    description: str
    n_train: int
    n_test: int
    sample_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    idx: bool  # IDX files (searched / downloaded) rather than bundled


_DIGITS = tuple(str(d) for d in range(10))
NAMED_SETS: dict[str, NamedSet] = {
    s.name: s
    for s in (
        NamedSet("digits", "scikit-learn's bundled 8x8 handwritten digits (no download)",
                 1437, 360, (1, 8, 8), _DIGITS, idx=False),
        NamedSet("mnist", "MNIST handwritten digits, 28x28 grayscale",
                 60000, 10000, (1, 28, 28), _DIGITS, idx=True),
        NamedSet("fashion-mnist", "Zalando's Fashion-MNIST clothing images, 28x28 grayscale",
                 60000, 10000, (1, 28, 28),
                 ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot"), idx=True),
    )
}  # fmt: skip


def cache_dir(name: str) -> Path:
    """The user cache folder of a named set: ``$XDG_CACHE_HOME/aekit/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aekit" / name


def _search_dirs(name: str, data_home: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """Folders to search, in order, each with a label for messages."""
    dirs: list[tuple[Path, str]] = []
    if data_home is not None:
        dirs.append((Path(data_home) / name, "data_home argument"))
    else:
        for home in filter(None, os.environ.get("AEKIT_DATA_HOME", "").split(os.pathsep)):
            dirs.append((Path(home) / name, "$AEKIT_DATA_HOME"))
    dirs.append((cache_dir(name), "user cache"))
    dirs += [(Path(d), "system folder") for d in SYSTEM_DIRS.get(name, [])]
    return dirs


def _idx_files(folder: Path) -> dict[str, Path]:
    """The IDX files present in ``folder`` (gz preferred, raw accepted), by split part."""
    found = {}
    for part, gz_name in IDX_FILES.items():
        for candidate in (folder / gz_name, folder / gz_name.removesuffix(".gz")):
            if candidate.is_file():
                found[part] = candidate
                break
    return found


def _mirrors(name: str, mirrors: Sequence[str] | None) -> list[str]:
    if mirrors is not None:
        return list(mirrors)
    env = os.environ.get(URL_ENV.get(name, ""), "")
    return [u.strip() for u in env.split(",") if u.strip()] or list(MIRRORS.get(name, []))


def _download(name: str, dest: Path, have: dict[str, Path], mirrors: list[str]) -> list[str]:
    """Fetch the missing files into ``dest``; return error lines ([] on success)."""
    errors: list[str] = []
    for part, file_name in IDX_FILES.items():
        if part in have:
            continue
        for base in mirrors:
            url = base.rstrip("/") + "/" + file_name
            try:
                have[part] = download_file(url, dest / file_name, sha256=SHA256[name][file_name])
                break
            except ChecksumError:
                raise
            except DataFileError as exc:
                errors.append(str(exc))
        else:
            return errors or [f"no download mirror is configured for {name}"]
    return []


def _not_found(name: str, report: list[str], reason: str, dest: Path) -> DatasetNotFoundError:
    files = ", ".join(IDX_FILES.values())
    fixes = [
        f"set AEKIT_DATA_HOME to a folder that holds {name}/ with these files",
        f"copy them into {dest}",
    ]
    if name in _SYSTEM_FIX:
        fixes.append(_SYSTEM_FIX[name])
    if reason.startswith("Download failed"):
        fixes.append(f"check the network, or point {URL_ENV[name]} at a reachable mirror")
    else:
        fixes.append("allow downloading (download=True, AEKIT_OFFLINE unset) on a machine online")
    return DatasetNotFoundError(
        f"dataset {name!r} is not available. Looked for {files} (or without .gz) in:\n"
        + "\n".join(report)
        + f"\n{reason}\nTo fix: "
        + "; or ".join(fixes)
        + ". The 'digits' data set needs no files."
    )


def _load_idx_set(
    name: str,
    *,
    download: bool,
    data_home: str | os.PathLike | None,
    mirrors: Sequence[str] | None,
) -> Dataset:
    report: list[str] = []
    files: dict[str, Path] | None = None
    if data_home is None and not os.environ.get("AEKIT_DATA_HOME"):
        report.append(f"  - $AEKIT_DATA_HOME/{name}: AEKIT_DATA_HOME is not set")
    for folder, label in _search_dirs(name, data_home):
        have = _idx_files(folder)
        if len(have) == len(IDX_FILES):
            files = have
            break
        state = f"has {len(have)} of {len(IDX_FILES)} files" if have else "missing"
        report.append(f"  - {folder} ({label}): {state}")
    if files is None:
        dest = cache_dir(name)
        if not download or is_offline():
            why = "download=False" if not download else "AEKIT_OFFLINE is set"
            raise _not_found(name, report, f"Downloading is off ({why}).", dest)
        have = _idx_files(dest)
        errors = _download(name, dest, have, _mirrors(name, mirrors))
        if errors:
            raise _not_found(name, report, "Download failed:\n  " + "\n  ".join(errors), dest)
        files = have
    return _read_idx_set(name, files)


def _read_idx_set(name: str, files: dict[str, Path]) -> Dataset:
    arrays = {part: read_idx(path) for part, path in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xf, yf = files[f"x_{split}"], files[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataFileError(f"{xf} should hold uint8 images (N, H, W), got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataFileError(
                f"{yf} should hold one label per image of {xf} ({len(x)}), got shape {y.shape}"
            )
    spec = NAMED_SETS[name]
    return Dataset(
        name=name,
        x_train=to_float01(arrays["x_train"][:, None]),  # (N, H, W) -> (N, 1, H, W)
        y_train=arrays["y_train"].astype(np.int64),
        x_test=to_float01(arrays["x_test"][:, None]),
        y_test=arrays["y_test"].astype(np.int64),
        source=str(files["x_train"].parent),
        class_names=spec.class_names,
    )


def _load_digits(test_size: float, random_state: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # values 0..16 -> [0, 1]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = split_train_test(
        x, y, test_size=test_size, random_state=random_state, name="digits"
    )
    return Dataset(
        "digits", x_train, y_train, x_test, y_test,
        f"scikit-learn load_digits (stratified split {test_size:g} test, seed {random_state})",
        NAMED_SETS["digits"].class_names,
    )  # fmt: skip


def load_named(
    name: str,
    *,
    download: bool = True,
    data_home: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    test_size: float = 0.2,
    random_state: int = 0,
) -> Dataset:
    """Load a named set (a canonical name from NAMED_SETS); see ``load_dataset``."""
    if name == "digits":
        return _load_digits(test_size, random_state)
    return _load_idx_set(name, download=download, data_home=data_home, mirrors=mirrors)


def named_info(name: str, data_home: str | os.PathLike | None = None) -> DatasetInfo:
    """Where a named set is present (without reading it) and its known sizes."""
    spec = NAMED_SETS[name]
    found_at: str | None = "scikit-learn (bundled)"
    if spec.idx:
        found_at = None
        for folder, _ in _search_dirs(name, data_home):
            if len(_idx_files(folder)) == len(IDX_FILES):
                found_at = str(folder)
                break
    return DatasetInfo(
        name=name,
        description=spec.description,
        found_at=found_at,
        n_train=spec.n_train,
        n_test=spec.n_test,
        sample_shape=spec.sample_shape,
        downloadable=spec.idx and not is_offline() and bool(_mirrors(name, None)),
    )
