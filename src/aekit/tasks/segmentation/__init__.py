"""Segmentation: a U-Net that labels every pixel, trained on image/mask pairs (``Segmenter``)."""

from .augment import Augment, augment_batch, dihedral, elastic, random_crops
from .data import SegmentationSet, apply_mapping, load_pairs, parse_mapping, read_image_folder_pairs, read_mask
from .losses import segmentation_loss
from .metrics import (
    adapted_rand_error,
    confusion_matrix,
    dice,
    iou,
    pixel_error,
    rand_error,
    regions,
    segmentation_report,
)
from .segmenter import Segmenter
from .tiling import predict_tiled
from .training import CropSampler, SegmentationTrainer, WholeImages

__all__ = [
    "Augment",
    "CropSampler",
    "SegmentationSet",
    "SegmentationTrainer",
    "Segmenter",
    "WholeImages",
    "adapted_rand_error",
    "apply_mapping",
    "augment_batch",
    "confusion_matrix",
    "dice",
    "dihedral",
    "elastic",
    "iou",
    "load_pairs",
    "parse_mapping",
    "pixel_error",
    "predict_tiled",
    "rand_error",
    "random_crops",
    "read_image_folder_pairs",
    "read_mask",
    "regions",
    "segmentation_loss",
    "segmentation_report",
]
