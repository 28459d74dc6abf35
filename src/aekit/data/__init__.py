"""Data layer: named and user data sets, preprocessing, IDX files and input corruptions."""

from aekit.data.dataset import Dataset, DatasetInfo
from aekit.data.datasets import DATASET_NAMES, list_datasets, load_dataset
from aekit.data.idx import read_idx, write_idx
from aekit.data.images import load_images
from aekit.data.noise import (
    Corruption,
    GaussianNoise,
    MaskNoise,
    SaltPepperNoise,
    SeedNoise,
    corrupt_numpy,
    parse_corruption,
)
from aekit.data.preprocess import as_images, binarize, to_float01, validate_array

__all__ = [
    "DATASET_NAMES",
    "Corruption",
    "Dataset",
    "DatasetInfo",
    "GaussianNoise",
    "MaskNoise",
    "SaltPepperNoise",
    "SeedNoise",
    "as_images",
    "binarize",
    "corrupt_numpy",
    "list_datasets",
    "load_dataset",
    "load_images",
    "parse_corruption",
    "read_idx",
    "to_float01",
    "validate_array",
    "write_idx",
]
