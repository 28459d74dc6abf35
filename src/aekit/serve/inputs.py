"""Request bodies -> arrays, with errors people can read: size limits, JSON, uploads, shapes.

Nothing here opens a path taken from a request: uploads are decoded from memory (a series CSV
goes through a private temporary file that is removed at once).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import tempfile
from typing import Any

import numpy as np
from fastapi import HTTPException, Request

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
MAX_IMAGE_PIXELS = 25_000_000  # uploads larger than this (decompressed) are refused before decoding
MAX_ITEMS = 20_000_000  # numbers in one request's inputs, on top of the byte limit


class BadRequest(HTTPException):
    """An error in what the client sent: a status code and one readable sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status_code=status, detail=message)


def unprocessable(message: str) -> BadRequest:
    return BadRequest(422, message)


def fmt_limit(n_bytes: int) -> str:
    mb = n_bytes / 1e6
    return f"{mb:g} MB" if mb >= 1 else f"{n_bytes:,} bytes"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) once more than ``limit`` bytes arrive (chunked bodies too)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"request body of {int(declared):,} bytes is over the limit of {fmt_limit(limit)}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise BadRequest(413, f"request body is over the limit of {fmt_limit(limit)}")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # noqa: SLF001 - lets request.form() parse what was already read
    return body


def parse_json(body: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object with only ``allowed`` keys (422 for malformed JSON or unknown keys)."""
    if not body.strip():
        raise unprocessable("empty request body: send a JSON object such as {\"inputs\": [[...]]}, "
                            "or a multipart form with an image file")
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as err:
        raise unprocessable(f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as err:
        raise unprocessable(f"malformed JSON: {err}") from None
    if not isinstance(doc, dict):
        raise unprocessable(f"the JSON body must be an object with fields {', '.join(allowed)}; "
                            f"got a {type(doc).__name__}")
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise unprocessable(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                            f"this endpoint takes {', '.join(allowed)}")
    return doc


def optional_str(doc: dict[str, Any], key: str) -> str | None:
    v = doc.get(key)
    if v is not None and not isinstance(v, str):
        raise unprocessable(f"'{key}' must be a string, got {type(v).__name__}")
    return v


def parse_k(value: Any, size: int) -> int:
    """Neighbours per query: an integer in [1, min(size, 1000)]."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise unprocessable(f"'k' must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise unprocessable(f"'k' must be a whole number, got {value!r}")
    top = min(size, 1000)
    if not 1 <= value <= top:
        raise unprocessable(f"'k' must be between 1 and {top} (the index holds {size:,} images), got {value}")
    return value


def to_array(inputs: Any, *, what: str = "inputs", allow_nan: bool = False) -> np.ndarray:
    """A rectangular nested list of numbers -> float32 array (422 otherwise)."""
    if inputs is None:
        raise unprocessable(f"'{what}' is missing: send a nested list of numbers (batch first)")
    if isinstance(inputs, (str, dict)):
        raise unprocessable(f"'{what}' must be a nested list of numbers, got a {type(inputs).__name__}")
    try:
        arr = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError) as err:
        text = str(err)
        if "sequence" in text or "inhomogeneous" in text:
            raise unprocessable(f"'{what}' is ragged: every sample (and row) must have the same length") from None
        if allow_nan and "None" in text:
            raise unprocessable(f"'{what}' holds values that are not numbers") from None
        raise unprocessable(f"'{what}' must hold only numbers ({text})") from None
    if arr.size == 0:
        raise unprocessable(f"'{what}' is empty: send at least one sample")
    if arr.size > MAX_ITEMS:
        raise BadRequest(413, f"'{what}' holds {arr.size:,} numbers; at most {MAX_ITEMS:,} per request")
    if not allow_nan and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise unprocessable(f"'{what}' contains NaN or infinite values (first at index {list(map(int, bad))}); "
                            "send finite numbers")
    return arr


def fit_shape(arr: np.ndarray, shape: tuple[int, ...], *, what: str, model: str, image: bool) -> np.ndarray:
    """A batch (n, *shape) from one sample or a batch; images also as (H, W) / (n, H, W) with C = 1."""
    shape = tuple(shape)
    alt = shape[1:] if image and len(shape) == 3 and shape[0] == 1 else None  # (H, W) for one channel
    if arr.shape == shape or (alt is not None and arr.shape == alt):
        out = arr.reshape(1, *shape)
    elif arr.shape[1:] == shape or (alt is not None and arr.shape[1:] == alt):
        out = arr.reshape(len(arr), *shape)
    else:
        want = "x".join(map(str, shape))
        raise unprocessable(
            f"'{what}' of shape {list(arr.shape)} does not fit model {model!r}, whose input is {list(shape)}: send "
            f"one sample of shape {list(shape)} or a batch [n, {', '.join(map(str, shape))}] ({want} per sample)"
            + (" — image files are resized automatically, arrays are not" if image else "")
        )
    return out


def image_range(x: np.ndarray, *, what: str = "inputs") -> np.ndarray:
    """Image values in [0, 1]: floats as they are; whole numbers above 1 read as 0..255 pixels."""
    lo, hi = float(x.min()), float(x.max())
    if hi > 1 and lo >= 0 and hi <= 255 and np.all(x == np.round(x)):
        return (x / 255.0).astype(np.float32)
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise unprocessable(f"image '{what}' must be floats in [0, 1] (or whole numbers 0..255); "
                            f"got values in [{lo:.4g}, {hi:.4g}]")
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def decode_image(data: bytes, filename: str | None, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """An uploaded PNG/JPEG/... -> (C, H, W) float32 in [0, 1] at the model's size; (image, resized)."""
    from PIL import Image, UnidentifiedImageError

    from ..data.images import convert_channels, resize_images

    name = f" {filename!r}" if filename else ""
    if not data:
        raise BadRequest(415, f"the uploaded file{name} is empty; send a PNG or JPEG image")
    try:
        img = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
    except UnidentifiedImageError:
        raise BadRequest(415, f"the uploaded file{name} is not an image ({', '.join(IMAGE_FORMATS)} are "
                              "accepted)") from None
    except Exception as err:  # noqa: BLE001 - anything Pillow throws at a hostile file
        raise BadRequest(415, f"the uploaded file{name} could not be read as an image ({err})") from None
    with img:
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise BadRequest(413, f"the uploaded image is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS:,} pixels")
        try:
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0, 1)
            elif img.mode == "F":
                arr = np.asarray(img, dtype=np.float32)
                arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-12)
            else:
                arr = np.asarray(img.convert("L" if shape[0] == 1 else "RGB"), dtype=np.float32) / 255.0
        except Exception as err:  # noqa: BLE001 - truncated or corrupt data
            raise BadRequest(415, f"the uploaded image{name} is damaged and could not be decoded ({err})") from None
    x = arr[None, None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[None]
    channels, size = shape[0], tuple(shape[1:])
    x = convert_channels(np.ascontiguousarray(x, dtype=np.float32), channels)
    resized = tuple(x.shape[2:]) != size
    if resized:
        x = resize_images(x, size)
    return np.ascontiguousarray(x[0], dtype=np.float32), resized


def png_data_url(img: np.ndarray) -> str:
    """A (C, H, W) or (H, W) image in [0, 1] as a ``data:image/png;base64,...`` URL."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)
    u8 = (np.clip(np.nan_to_num(a), 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def series_from_csv_bytes(data: bytes, det) -> Any:
    """A series CSV upload read exactly as ``aekit detect score`` reads a CSV, for detector ``det``."""
    from ..cli.detect import load_detect_data

    if not data.strip():
        raise unprocessable("the uploaded CSV file is empty: expected a header row and data rows")
    fd, tmp = tempfile.mkstemp(prefix="aekit-serve-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        d = load_detect_data(
            tmp, kind="series", columns=list(det.columns_), max_gap=getattr(det, "max_gap", 3),
            freq=getattr(det, "freq_", "auto"),
        )
        return d.series
    except Exception as err:
        msg = str(err).replace(tmp, "the uploaded CSV").replace(os.path.basename(tmp), "the uploaded CSV")
        from ..errors import AekitError

        if isinstance(err, AekitError):
            raise unprocessable(msg) from None
        raise
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def finite_list(x: np.ndarray) -> list:
    """Floats for JSON, with NaN/inf as null."""
    arr = np.asarray(x, dtype=np.float64)
    if np.isfinite(arr).all():
        return arr.tolist()
    return [None if not math.isfinite(v) else v for v in arr.ravel().tolist()]
