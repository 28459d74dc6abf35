"""The in-memory Dataset container and the fixed train/test split helper."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from aekit.errors import ConfigError, DataError

__all__ = ["Dataset", "DatasetInfo", "encode_labels", "split_train_test"]


@dataclass(eq=False)
class Dataset:
    """A train/test pair of arrays with optional integer labels.

    Attributes
    ----------
    name : str
        Short name (``"mnist"``, or the file/folder name for user data).
    x_train : ndarray of shape (n_train, C, H, W) or (n_train, n_features), float32
        Images are in [0, 1]; 2-D feature tables keep their values.
    y_train : ndarray of shape (n_train,), int64, or None
    x_test : ndarray of shape (n_test, ...), float32
        Same trailing shape as ``x_train``; may have zero rows.
    y_test : ndarray of shape (n_test,), int64, or None
    source : str
        Where the data was found, for people to read.
    class_names : tuple of str or None
        Name of each label value, when known.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    source: str
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train samples have shape {self.x_train.shape[1:]} but test "
                f"samples {self.x_test.shape[1:]}"
            )
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if y is not None and len(y) != len(x):
                raise DataError(
                    f"{self.name}: {len(x)} {split} samples but {len(y)} {split} labels"
                )

    @property
    def is_image(self) -> bool:
        """True for (N, C, H, W) image data, False for (N, n_features) tables."""
        return self.x_train.ndim == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(n_features,)``."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images; DataError for a feature table."""
        if not self.is_image:
            raise DataError(
                f"{self.name} is a feature table of shape {self.x_train.shape}, not images; "
                "use sample_shape"
            )
        c, h, w = self.sample_shape
        return c, h, w

    @property
    def n_classes(self) -> int | None:
        """Number of classes, or None when the set has no labels."""
        if self.class_names is not None:
            return len(self.class_names)
        labels = [y for y in (self.y_train, self.y_test) if y is not None and len(y)]
        if not labels:
            return None
        return int(max(int(y.max()) for y in labels)) + 1

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """A Dataset with only the first ``n_train`` / ``n_test`` rows (None keeps all).

        The arrays are views of this Dataset's arrays, not copies.
        """
        for arg, value in (("n_train", n_train), ("n_test", n_test)):
            if value is not None and (not isinstance(value, int | np.integer) or value < 0):
                raise ConfigError(f"{arg} must be a non-negative integer or None, got {value!r}")

        def head(a: np.ndarray | None, n: int | None) -> np.ndarray | None:
            return a if a is None or n is None else a[:n]

        return dataclasses.replace(
            self,
            x_train=head(self.x_train, n_train),
            y_train=head(self.y_train, n_train),
            x_test=head(self.x_test, n_test),
            y_test=head(self.y_test, n_test),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, "
            f"x_test={self.x_test.shape}, n_classes={self.n_classes}, source={self.source!r})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What ``list_datasets`` reports about one named data set."""

    name: str
    description: str
    found_at: str | None  # folder (or "scikit-learn") where it is present; None if absent
    n_train: int | None
    n_test: int | None
    sample_shape: tuple[int, ...] | None
    downloadable: bool


def encode_labels(y: np.ndarray, name: str = "y") -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels as int64; strings become indices into sorted class names.

    Returns
    -------
    labels : ndarray of shape (n_samples,), int64
    class_names : tuple of str or None
        Set when the labels were strings.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # a column vector
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name} must be one label per sample (1-D), got shape {y.shape}")
    if y.dtype.kind in "UST":
        names, codes = np.unique(y.astype(str), return_inverse=True)
        return codes.astype(np.int64), tuple(str(n) for n in names)
    if y.dtype.kind == "b" or y.dtype.kind in "iu":
        return y.astype(np.int64), None
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(
                f"{name} must hold whole-number class labels, got fractional/NaN values"
            )
        return y.astype(np.int64), None
    raise DataError(f"{name} has unsupported label dtype {y.dtype}")


def split_train_test(
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    test_size: float = 0.2,
    random_state: int = 0,
    name: str = "data",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Reproducible shuffled split, stratified by ``y`` when every class can be split.

    ``test_size=0`` keeps every sample for training and returns an empty test set.

    Returns
    -------
    x_train, x_test, y_train, y_test
    """
    if not 0.0 <= test_size < 1.0:
        raise ConfigError(f"test_size must be in [0, 1), got {test_size}")
    if test_size == 0.0:
        return x, x[:0], y, None if y is None else y[:0]
    from sklearn.model_selection import train_test_split

    if len(x) < 2:
        raise DataError(
            f"{name} has {len(x)} sample(s): at least 2 are needed for a train/test split "
            "(pass test_size=0 to use them all for training)"
        )
    stratify = y
    if y is not None:
        _, counts = np.unique(y, return_counts=True)
        n_test = int(np.ceil(test_size * len(y)))
        if counts.min() < 2 or n_test < len(counts) or len(y) - n_test < len(counts):
            stratify = None  # some class too small to appear on both sides
    arrays = (x,) if y is None else (x, y)
    parts = train_test_split(
        *arrays, test_size=test_size, random_state=random_state, stratify=stratify
    )
    if y is None:
        return parts[0], parts[1], None, None
    return parts[0], parts[1], parts[2], parts[3]
