"""Data layer: named and user data sets, CSV tables and series, preprocessing, IDX files, corruptions."""

from aekit.data.dataset import Dataset, DatasetInfo
from aekit.data.datasets import DATASET_NAMES, list_datasets, load_dataset
from aekit.data.idx import read_idx, write_idx
from aekit.data.images import load_images
from aekit.data.noise import (
    ChainedCorruption,
    Corruption,
    GaussianNoise,
    MaskNoise,
    SaltPepperNoise,
    SeedNoise,
    ShiftNoise,
    corrupt_numpy,
    parse_corruption,
)
from aekit.data.preprocess import as_images, binarize, to_float01, validate_array
from aekit.data.series import Series, as_series, read_series_csv, sliding_windows, window_scores_to_points
from aekit.data.tables import read_table_csv

__all__ = [
    "DATASET_NAMES",
    "Corruption",
    "Dataset",
    "DatasetInfo",
    "GaussianNoise",
    "MaskNoise",
    "SaltPepperNoise",
    "SeedNoise",
    "ShiftNoise",
    "ChainedCorruption",
    "Series",
    "as_images",
    "as_series",
    "binarize",
    "corrupt_numpy",
    "list_datasets",
    "load_dataset",
    "load_images",
    "parse_corruption",
    "read_idx",
    "read_series_csv",
    "read_table_csv",
    "sliding_windows",
    "to_float01",
    "validate_array",
    "window_scores_to_points",
    "write_idx",
]
