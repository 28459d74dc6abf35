"""Image/mask pairs for segmentation: two folders matched by name, or arrays; value -> class maps.

Images become float32 (C, H, W) in [0, 1] (as everywhere in aekit); masks become int64 (H, W)
class maps through a value-to-class ``mapping`` (e.g. the ISBI 2012 masks: ``{0: 1, 255: 0}``,
membrane = class 1). Sizes may differ between pairs, never between an image and its mask.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...data.images import has_image_suffix, read_image
from ...errors import ConfigError, DataError, DataFileError

#: suffixes stripped from mask file names when matching them to images ("cat_mask.png" -> "cat")
MASK_SUFFIXES = ("_mask", "-mask", "_label", "-label", "_labels", "_gt", "_seg")


@dataclass
class SegmentationSet:
    """Images (each (C, H, W) float32 in [0, 1]) with optional masks (each (H, W) int64 classes)."""

    images: list[np.ndarray]
    masks: list[np.ndarray] | None = None
    names: list[str] = field(default_factory=list)
    mapping: dict[int, int] | None = None  # the value -> class mapping the masks went through

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0])

    def subset(self, idx: Sequence[int]) -> SegmentationSet:
        return SegmentationSet(
            [self.images[i] for i in idx],
            None if self.masks is None else [self.masks[i] for i in idx],
            [self.names[i] for i in idx],
            self.mapping,
        )


# -- value -> class mapping -----------------------------------------------------------------------
def parse_mapping(spec: str | Mapping | None) -> dict[int, int] | None:
    """``"0:1,255:0"`` or ``{0: 1, 255: 0}`` -> ``{0: 1, 255: 0}`` (mask value -> class index)."""
    if spec is None or spec == "" or spec == "auto":
        return None
    if isinstance(spec, str):
        out: dict[int, int] = {}
        for part in spec.split(","):
            try:
                v, c = (int(s) for s in part.split(":"))
            except ValueError:
                raise ConfigError(f"bad mapping {spec!r}: use VALUE:CLASS pairs, e.g. '0:1,255:0'") from None
            out[v] = c
        spec = out
    try:
        mapping = {int(k): int(v) for k, v in dict(spec).items()}
    except (TypeError, ValueError):
        raise ConfigError(f"mapping must map mask values to class indices, got {spec!r}") from None
    if not mapping:
        raise ConfigError("mapping is empty")
    classes = sorted(set(mapping.values()))
    if classes[0] < 0 or classes != list(range(classes[-1] + 1)) or len(classes) < 2:
        raise ConfigError(f"mapping must use the classes 0, 1, ... K-1 (K >= 2), each at least once; got {mapping}")
    return mapping


def infer_mapping(raw_masks: Sequence[np.ndarray]) -> dict[int, int]:
    """The default mapping: values already 0..K-1 stay; binary 8-bit masks {0, 255} give 255 -> 1."""
    values = np.unique(np.concatenate([np.unique(m) for m in raw_masks]))
    if set(values.tolist()) <= {0, 255}:
        return {0: 0, 255: 1}
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"mask values {values.min()}..{values.max()} are not class indices; give a mapping")
    k = max(int(values.max()) + 1, 2)
    return {v: v for v in range(k)}


def apply_mapping(raw: np.ndarray, mapping: Mapping[int, int], name: str) -> np.ndarray:
    """Raw mask values -> int64 class map; values outside ``mapping`` are an error naming ``name``."""
    values = np.unique(raw)
    unknown = [int(v) for v in values if int(v) not in mapping]
    if unknown:
        shown = ", ".join(map(str, unknown[:8])) + (" ..." if len(unknown) > 8 else "")
        raise DataError(
            f"{name}: mask values {shown} are not in the mapping {dict(mapping)}; fix the mask or "
            "declare every value (e.g. mapping='0:1,255:0')"
        )
    lut = np.zeros(int(max(values.max(), max(mapping))) + 1, dtype=np.int64)
    for v, c in mapping.items():
        if v >= 0 and v < len(lut):
            lut[v] = c
    return lut[raw.astype(np.int64)]


# -- files -------------------------------------------------------------------------------------------
def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Raw mask values (H, W) as int64 (8/16-bit gray, palette indices, or RGB with equal channels)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "1":
                arr = np.asarray(img.convert("L"))
            elif img.mode in ("RGB", "RGBA"):
                rgb = np.asarray(img.convert("RGB"))
                if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                    raise DataError(
                        f"{path}: colour mask (RGB values differ); save masks as gray or palette PNGs of class values"
                    )
                arr = rgb[..., 0]
            elif img.mode == "LA":
                arr = np.asarray(img)[..., 0]
            else:  # "L", "P" (palette indices), "I", "I;16"
                arr = np.asarray(img)
    except UnidentifiedImageError as err:
        raise DataFileError(f"{path} is not an image file Pillow can read") from err
    except OSError as err:
        raise DataFileError(f"{path} could not be read as a mask ({err})") from err
    return np.asarray(arr, dtype=np.int64)


def _image_files(folder: Path, what: str) -> list[Path]:
    if not folder.exists():
        raise DataFileError(f"{what} folder {folder} does not exist")
    if not folder.is_dir():
        raise DataFileError(f"{what}: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and has_image_suffix(p))
    if not files:
        raise DataError(f"{what} folder {folder} holds no image files (.png, .jpg, .tif, ...)")
    return files


def _mask_key(path: Path) -> str:
    stem = path.stem
    for s in MASK_SUFFIXES:
        if stem.lower().endswith(s) and len(stem) > len(s):
            return stem[: -len(s)]
    return stem


def _natural(name: str):
    return (len(name), name) if name.isdigit() else (float("inf"), name)


def _list_names(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def read_image_folder_pairs(
    images: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    *,
    require_masks: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[str], list[str]]:
    """Read images (float (C, H, W)) and raw masks (int (H, W)) matched by file name (stem).

    Returns images, raw masks (or None), names (file stems) and the mask files' paths (for errors).

    Mask names may end in ``_mask``, ``_label``, ``_gt`` ... (``a.png`` <-> ``a_mask.png``).
    Every image needs a mask when ``require_masks``; masks without an image are an error too.
    """
    img_files = _image_files(Path(images), "images")
    by_stem = {p.stem: p for p in img_files}
    names = sorted(by_stem, key=_natural)
    raw_masks = None
    if masks is not None:
        mask_files = _image_files(Path(masks), "masks")
        mask_by = {}
        for p in mask_files:
            key = p.stem if p.stem in by_stem else _mask_key(p)
            if key in mask_by:
                raise DataError(f"two masks for image {key!r}: {mask_by[key].name} and {p.name}")
            mask_by[key] = p
        missing = [n for n in names if n not in mask_by]
        if missing and require_masks:
            raise DataError(
                f"{len(missing)} image(s) in {images} have no mask in {masks}: {_list_names(missing)} "
                "(masks are matched by file name, e.g. a.png <-> a.png or a_mask.png)"
            )
        extra = sorted(set(mask_by) - set(by_stem))
        if extra:
            raise DataError(f"{len(extra)} mask(s) in {masks} have no image in {images}: {_list_names(extra)}")
        names = [n for n in names if n in mask_by]
        raw_masks = [read_mask(mask_by[n]) for n in names]
    imgs = [read_image(by_stem[n]) for n in names]
    if raw_masks is not None:
        for n, im, m in zip(names, imgs, raw_masks):
            if im.shape[1:] != m.shape:
                raise DataError(
                    f"image {by_stem[n].name} is {im.shape[2]}x{im.shape[1]} but its mask "
                    f"{mask_by[n].name} is {m.shape[1]}x{m.shape[0]} (width x height); they must match"
                )
    check_channels(imgs, [by_stem[n].name for n in names])
    mask_paths = [str(mask_by[n]) for n in names] if raw_masks is not None else []
    return imgs, raw_masks, names, mask_paths


def check_channels(images: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """All images must have the same number of channels; the error names one of each kind."""
    counts: dict[int, str] = {}
    for im, n in zip(images, names):
        counts.setdefault(int(im.shape[0]), n)
    if len(counts) > 1:
        desc = ", ".join(f"{c} channel(s) (e.g. {n})" for c, n in sorted(counts.items()))
        raise DataError(f"images of mixed channel counts: {desc}; convert them to one format")


# -- arrays ------------------------------------------------------------------------------------------
def _as_image_list(x, what: str) -> list[np.ndarray]:
    """(N, H, W), (N, C, H, W) arrays or a list of (H, W)/(C, H, W) -> list of float32 (C, H, W)."""
    items = list(x) if isinstance(x, (list, tuple)) else None
    if items is None:
        arr = np.asarray(x)
        if arr.ndim not in (3, 4):
            raise DataError(f"{what}: expected (N, H, W) or (N, C, H, W) arrays, got shape {arr.shape}")
        items = list(arr)
    if not items:
        raise DataError(f"{what} is empty")
    out = []
    for i, a in enumerate(items):
        a = np.asarray(a)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise DataError(f"{what}[{i}]: expected (H, W) or (C, H, W), got shape {a.shape}")
        if a.dtype == np.uint8:
            a = a.astype(np.float32) / 255.0
        elif a.dtype == np.uint16:
            a = a.astype(np.float32) / 65535.0
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{what}[{i}] holds NaN/inf values")
        if a.min() < 0 or a.max() > 1:
            raise DataError(f"{what}[{i}]: float images must be in [0, 1] (got {a.min():.3g}..{a.max():.3g})")
        out.append(a)
    return out


def _as_mask_list(y, what: str) -> list[np.ndarray]:
    items = list(y) if isinstance(y, (list, tuple)) else list(np.asarray(y))
    out = []
    for i, m in enumerate(items):
        m = np.asarray(m)
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise DataError(f"{what}[{i}]: a mask is (H, W), got shape {m.shape}")
        if np.issubdtype(m.dtype, np.floating):
            if not np.isfinite(m).all() or not np.array_equal(m, np.round(m)):
                raise DataError(f"{what}[{i}]: mask values must be whole numbers (class values)")
        elif not (np.issubdtype(m.dtype, np.integer) or m.dtype == bool):
            raise DataError(f"{what}[{i}]: masks must be integer arrays, got {m.dtype}")
        out.append(m.astype(np.int64))
    return out


def load_pairs(images, masks=None, *, require_masks: bool = True):
    """Folders or arrays -> (images list, raw masks list or None, names, mask labels for errors)."""
    if isinstance(images, (str, os.PathLike)):
        if masks is not None and not isinstance(masks, (str, os.PathLike)):
            raise DataError("give images and masks both as folders or both as arrays")
        return read_image_folder_pairs(images, masks, require_masks=require_masks)
    imgs = _as_image_list(images, "images")
    names = [str(i) for i in range(len(imgs))]
    check_channels(imgs, [f"images[{i}]" for i in range(len(imgs))])
    if masks is None:
        return imgs, None, names, []
    raw = _as_mask_list(masks, "masks")
    if len(raw) != len(imgs):
        raise DataError(f"{len(imgs)} images but {len(raw)} masks; give one mask per image")
    for i, (im, m) in enumerate(zip(imgs, raw)):
        if im.shape[1:] != m.shape:
            raise DataError(f"images[{i}] is {im.shape[1:]} (H, W) but masks[{i}] is {m.shape}; they must match")
    return imgs, raw, names, [f"masks[{i}]" for i in range(len(raw))]
