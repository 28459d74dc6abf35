"""Figures for autoencoder work: numpy arrays in, PNG path out.

Every figure is a bare ``matplotlib.figure.Figure`` drawn by the Agg canvas, so nothing here
touches pyplot, opens a window or changes the user's chosen backend. PNGs are written to a
temporary file next to the target and moved into place with ``os.replace``, so a reader never
sees half a file.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from aekit._utils import is_worker_process
from aekit.errors import ConfigError, DataError

__all__ = ["image_strip", "latent_map", "loss_curves", "reconstruction_grid"]

# Image-grid layout, in inches (figure pixels = inches * dpi).
_CELL_MIN_IN = 0.9  # narrowest image cell; 28 px MNIST digits show at ~3x
_CELL_MAX_PX = 160  # larger images are shown at up to this many pixels wide (at dpi=100)
_GAP_IN = 0.06  # space between cells
_PAD_IN = 0.1  # figure margin
_LABEL_PT = 10  # row labels
_SMALL_PT = 8  # column headers and captions
_TITLE_PT = 11


# ----------------------------------------------------------------------------- saving


def _new_figure(figsize: tuple[float, float], dpi: float, *, constrained: bool) -> Figure:
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)  # attach Agg explicitly: no pyplot, no global backend switch
    return fig


def _check_png_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"figures are PNG files: give a path ending in .png, not {str(path)!r}")
    return path


def _save_png(fig: Figure, path: Path, dpi: float) -> Path:
    """Write ``fig`` to ``path`` atomically: temp file in the same folder, then os.replace."""
    if is_worker_process():  # distributed runs: figures come from rank 0 only
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # Opening with "xb" (rather than mkstemp) keeps the user's umask for the final file.
        with open(tmp, "xb") as f:
            fig.savefig(f, format="png", dpi=dpi)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------- input checks


def _numeric_array(x, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists, exotic objects
        raise DataError(f"{what} could not be read as a numeric array: {exc}") from exc
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _as_images(
    x, *, image_shape: Sequence[int] | None, what: str, limit: int | None = None
) -> np.ndarray:
    """Return images as float ``(n, H, W)`` (grey) or ``(n, H, W, 3)`` (RGB) in [0, 1].

    ``limit`` keeps only the first images before any copying, so big arrays stay cheap.
    """
    arr = _numeric_array(x, what)
    usage = "(n, C, H, W), (n, H, W, C), (n, H, W) or (n, H*W) with image_shape"
    if arr.ndim < 2:
        raise DataError(f"{what} must have shape {usage}; got shape {arr.shape}")
    n_all = arr.shape[0]
    if n_all == 0:
        raise DataError(f"{what} holds no images (shape {arr.shape})")
    arr = arr[:limit]
    n = arr.shape[0]

    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ConfigError(f"image_shape must be (H, W) or (C, H, W), got {tuple(image_shape)}")
        per_image, needed = math.prod(arr.shape[1:]), math.prod(shape)
        if per_image != needed:
            raise DataError(
                f"image_shape {shape} needs {needed} values per image, but {what} has "
                f"{per_image} (array shape {(n_all, *arr.shape[1:])})"
            )
        arr = arr.reshape((n, *shape))
    elif arr.ndim == 2:
        length = arr.shape[1]
        side = math.isqrt(length)
        if side * side != length:
            raise DataError(
                f"{what} holds flat vectors of length {length}, which is not a square grey "
                "image; pass image_shape=(H, W) or (C, H, W)"
            )
        arr = arr.reshape(n, side, side)  # (n, H*W) -> (n, H, W)

    if arr.ndim == 4:
        if arr.shape[1] in (1, 3):
            arr = arr.transpose(0, 2, 3, 1)  # (n, C, H, W) -> (n, H, W, C)
        elif arr.shape[3] not in (1, 3):
            raise DataError(
                f"{what} has shape {arr.shape}: images need 1 (grey) or 3 (RGB) channels, "
                "on axis 1 (n, C, H, W) or last (n, H, W, C)"
            )
        if arr.shape[3] == 1:
            arr = arr[..., 0]
    elif arr.ndim != 3:
        raise DataError(f"{what} must have shape {usage}; got shape {arr.shape}")

    scale = 255.0 if arr.dtype == np.uint8 else 1.0  # 8-bit images are read as 0..255
    arr = arr.astype(np.float32) / scale
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(n, -1).any(axis=1).sum())
        raise DataError(f"{what} contains NaN or infinite values ({bad} of the images shown)")
    return np.clip(arr, 0.0, 1.0)


def _per_column(values, n_images: int, ncols: int, what: str) -> list[str] | None:
    """Check a per-image sequence (titles, captions, ...) and return the shown part as text."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise DataError(f"{what} must be a sequence with one entry per image")
    values = list(values)
    if len(values) not in (n_images, ncols):
        shown = f" or one per image shown ({ncols})" if ncols != n_images else ""
        raise DataError(f"{what} has {len(values)} entries; give one per image ({n_images}){shown}")
    return [_fmt(v) for v in values[:ncols]]


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    return str(value)


# ----------------------------------------------------------------------------- image grids


@lru_cache(maxsize=1)
def _measuring_renderer() -> RendererAgg:
    return RendererAgg(1, 1, 72)  # 72 dpi: measurements come back in points


def _text_size_in(text: str, fontsize: float) -> tuple[float, float]:
    """Approximate (width, height) of ``text`` in inches, one line per newline."""
    if not text:
        return 0.0, 0.0
    renderer, prop = _measuring_renderer(), FontProperties(size=fontsize)
    lines = text.split("\n")
    widths = [
        renderer.get_text_width_height_descent(line or " ", prop, ismath=line.count("$") >= 2)[0]
        for line in lines
    ]
    return max(widths) / 72.0, len(lines) * fontsize * 1.25 / 72.0


def _grid_figure(
    grid: list[list[np.ndarray]],
    *,
    row_labels: list[str] | None,
    headers: list[str] | None,
    captions: list[list[str] | None] | None,
    cmap: str,
    title: str | None,
    dpi: float,
) -> Figure:
    """Lay images out in rows; sizes are computed from the texts so nothing overlaps.

    ``grid[r][c]`` is an ``(H, W)`` or ``(H, W, 3)`` image; rows may be shorter than others.
    ``headers`` go above the first row, ``captions[r]`` under row ``r``, ``row_labels`` left.
    """
    nrows, ncols = len(grid), max(len(row) for row in grid)
    h_px, w_px = grid[0][0].shape[:2]
    captions = captions or [None] * nrows

    texts = [t for t in (headers or []) if t]
    texts += [t for row in captions if row for t in row if t]
    text_w = max((_text_size_in(t, _SMALL_PT)[0] for t in texts), default=0.0)
    cell_w = max(_CELL_MIN_IN, min(w_px, _CELL_MAX_PX) / 100.0, text_w + 0.08)
    cell_h = cell_w * h_px / w_px

    def block_h(strings, fontsize):
        return max((_text_size_in(s, fontsize)[1] for s in strings or [] if s), default=0.0)

    title_h = block_h([title], _TITLE_PT) + (0.08 if title else 0.0)
    header_h = block_h(headers, _SMALL_PT) + (0.05 if headers and any(headers) else 0.0)
    caption_h = [block_h(row, _SMALL_PT) + (0.05 if row and any(row) else 0.0) for row in captions]
    label_w = max((_text_size_in(s, _LABEL_PT)[0] for s in row_labels or [] if s), default=0.0)
    label_w += 0.12 if label_w else 0.0

    grid_w = label_w + ncols * cell_w + (ncols - 1) * _GAP_IN
    title_w = _text_size_in(title, _TITLE_PT)[0] if title else 0.0
    fig_w = 2 * _PAD_IN + max(grid_w, title_w + 0.1)  # a long title widens the figure
    fig_h = (
        2 * _PAD_IN + title_h + header_h + nrows * cell_h + sum(caption_h) + (nrows - 1) * _GAP_IN
    )
    fig = _new_figure((fig_w, fig_h), dpi, constrained=False)

    def put(x_in, y_in, s, **kw):  # text at a position given in inches from the bottom left
        fig.text(x_in / fig_w, y_in / fig_h, s, **kw)

    x0 = (fig_w - grid_w) / 2 + label_w  # left edge of the first image column
    if title:
        put(
            fig_w / 2 if title_w + 0.1 > grid_w - label_w else x0 + (grid_w - label_w) / 2,
            fig_h - _PAD_IN,
            title,
            ha="center",
            va="top",
            fontsize=_TITLE_PT,
        )
    top = fig_h - _PAD_IN - title_h - header_h  # top edge of the current row
    for r, row in enumerate(grid):
        bottom = top - cell_h
        for c, img in enumerate(row):
            left = x0 + c * (cell_w + _GAP_IN)
            ax = fig.add_axes((left / fig_w, bottom / fig_h, cell_w / fig_w, cell_h / fig_h))
            ax.imshow(
                img,
                cmap=cmap if img.ndim == 2 else None,
                vmin=0.0,
                vmax=1.0,
                interpolation="nearest",
                aspect="auto",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_linewidth(0.5)
                spine.set_color("0.75")
            centre = left + cell_w / 2
            if r == 0 and headers and headers[c]:
                put(centre, top + 0.03, headers[c], ha="center", va="bottom", fontsize=_SMALL_PT)
            if captions[r] and c < len(captions[r]) and captions[r][c]:
                put(
                    centre, bottom - 0.03, captions[r][c], ha="center", va="top", fontsize=_SMALL_PT
                )
        if row_labels and row_labels[r]:
            put(
                x0 - 0.1,
                bottom + cell_h / 2,
                row_labels[r],
                ha="right",
                va="center",
                fontsize=_LABEL_PT,
            )
        top = bottom - caption_h[r] - _GAP_IN
    return fig


def reconstruction_grid(
    rows: Mapping[str, np.ndarray] | Sequence[tuple[str, np.ndarray]],
    path: str | os.PathLike,
    *,
    n: int = 10,
    titles: Sequence[str] | None = None,
    labels: Sequence | None = None,
    annotations: Sequence[str] | None = None,
    image_shape: Sequence[int] | None = None,
    cmap: str = "gray",
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """Draw rows of images side by side, e.g. original / noisy / reconstruction.

    Parameters
    ----------
    rows : dict of str to ndarray, or list of (str, ndarray)
        Row name (written at the left) and its images, in display order. Every row must hold
        the same number of images; column ``j`` of every row shows image ``j``. Each array is
        an ``ndarray of shape (n_images, C, H, W)`` with C = 1 (grey) or 3 (RGB), or of shape
        ``(n_images, H, W, C)``, ``(n_images, H, W)``, or ``(n_images, H*W)`` (flat vectors:
        reshaped with ``image_shape``, or as square grey images when that is omitted).
        Float values are clipped to [0, 1]; ``uint8`` arrays are divided by 255.
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    n : int, default 10
        Number of columns: the first ``n`` images of each row (fewer if fewer are given).
    titles : sequence of str, optional
        One title per image, written above the top row.
    labels : sequence, optional
        One class label per image, written above the top row (under its title, if any).
    annotations : sequence of str or float, optional
        One note per image, written under the bottom row, e.g. the squared error of that
        reconstruction; floats are shown with 3 significant digits.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(C, H, W)`` of one image; required for flat vectors that are not
        square grey images. Applied to every row.
    cmap : str, default "gray"
        Colour map for grey images (RGB images are shown as they are).
    title : str, optional
        Figure title.
    dpi : float, default 100
        Pixels per inch of the PNG; each image cell is at least 0.9 inch wide.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        Rows with different numbers of images or image sizes, arrays that are not images,
        an ``image_shape`` that does not match the vector length, NaN or inf values.
    ConfigError
        ``n < 1``, a malformed ``image_shape``, or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    if isinstance(rows, Mapping):
        items = list(rows.items())
    elif isinstance(rows, Sequence) and not isinstance(rows, str):
        items = list(rows)
        if not all(isinstance(it, Sequence) and len(it) == 2 for it in items):
            raise DataError("rows given as a list must hold (name, images) pairs")
    else:
        raise DataError(f"rows must be a dict or a list of (name, images) pairs, got {type(rows)}")
    if not items:
        raise DataError("rows is empty: give at least one (name, images) row")
    if int(n) < 1:
        raise ConfigError(f"n must be at least 1, got {n}")

    arrays = [(str(name), _numeric_array(imgs, f"row {str(name)!r}")) for name, imgs in items]
    counts = {name: len(a) if a.ndim else 0 for name, a in arrays}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k!r}: {v}" for k, v in counts.items())
        raise DataError(f"every row must hold the same number of images, got {detail}")
    n_images = counts[arrays[0][0]]
    ncols = max(1, min(int(n), n_images))

    grid, names = [], []
    for name, imgs in arrays:
        arr = _as_images(imgs, image_shape=image_shape, what=f"row {name!r}", limit=ncols)
        if grid and arr.shape[1:3] != grid[0].shape[1:3]:
            raise DataError(
                f"row {name!r} has {arr.shape[1]}x{arr.shape[2]} images but row "
                f"{names[0]!r} has {grid[0].shape[1]}x{grid[0].shape[2]}"
            )
        grid.append(arr)
        names.append(name)

    titles = _per_column(titles, n_images, ncols, "titles")
    labels = _per_column(labels, n_images, ncols, "labels")
    headers = None
    if titles or labels:
        headers = [
            "\n".join(s for s in pair if s)
            for pair in zip(titles or [""] * ncols, labels or [""] * ncols, strict=True)
        ]
    notes = _per_column(annotations, n_images, ncols, "annotations")
    captions = [None] * (len(grid) - 1) + [notes]

    fig = _grid_figure(
        [list(a) for a in grid],
        row_labels=names,
        headers=headers,
        captions=captions,
        cmap=cmap,
        title=title,
        dpi=dpi,
    )
    return _save_png(fig, path, dpi)


def image_strip(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    captions: Sequence[str] | None = None,
    ncols: int | None = None,
    image_shape: Sequence[int] | None = None,
    cmap: str = "gray",
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """Draw images in a grid, each with an optional caption under it.

    Suits "query, then its nearest neighbours with their distances": put the query first and
    caption it ``"query"``, then ``"d=0.12"`` and so on.

    Parameters
    ----------
    images : ndarray of shape (n, C, H, W)
        C = 1 (grey) or 3 (RGB); shapes ``(n, H, W, C)``, ``(n, H, W)`` and ``(n, H*W)`` (with
        ``image_shape``, or square grey) are accepted too. Float values are clipped to [0, 1];
        ``uint8`` arrays are divided by 255.
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    captions : sequence of str or float, optional
        One caption per image (may contain newlines); floats are shown with 3 significant
        digits.
    ncols : int, optional
        Images per row; default all of them in one row up to 10, else 10.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(C, H, W)`` of one image, to reshape flat vectors.
    cmap : str, default "gray"
        Colour map for grey images.
    title : str, optional
        Figure title.
    dpi : float, default 100
        Pixels per inch of the PNG.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        Arrays that are not images, an ``image_shape`` that does not match, NaN or inf
        values, or a caption count that differs from the image count.
    ConfigError
        ``ncols < 1``, a malformed ``image_shape``, or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    arr = _as_images(images, image_shape=image_shape, what="images")
    n = arr.shape[0]
    if ncols is None:
        ncols = min(n, 10)
    if int(ncols) < 1:
        raise ConfigError(f"ncols must be at least 1, got {ncols}")
    ncols = min(int(ncols), n)
    texts = None
    if captions is not None:
        texts = _per_column(captions, n, n, "captions")
    grid = [list(arr[i : i + ncols]) for i in range(0, n, ncols)]
    rows_captions = [texts[i : i + ncols] for i in range(0, n, ncols)] if texts else None
    fig = _grid_figure(
        grid, row_labels=None, headers=None, captions=rows_captions, cmap=cmap, title=title, dpi=dpi
    )
    return _save_png(fig, path, dpi)


# ----------------------------------------------------------------------------- loss curves


def _is_loss_key(key: str) -> bool:
    return key == "loss" or key.endswith("_loss")


def _to_float(value, key: str, i: int) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"history[{key!r}] entry {i} is not a number: {value!r}") from exc


def _history_columns(history) -> dict[str, np.ndarray]:
    """Turn a list of per-epoch dicts or a dict of lists into ``{key: float array}``.

    Only ``epoch`` and loss keys are converted; other keys are ignored.
    """
    if hasattr(history, "to_dict") and not isinstance(history, Mapping):
        history = history.to_dict(orient="list")  # a pandas DataFrame
    if isinstance(history, Mapping):
        lengths = {}
        for k, v in history.items():
            if isinstance(v, str) or not isinstance(v, Sequence | np.ndarray):
                raise DataError(f"history[{k!r}] must be a list with one value per epoch")
            lengths[str(k)] = len(v)
        if len(set(lengths.values())) > 1:
            raise DataError(f"history lists must all have the same length, got {lengths}")
        records = {str(k): list(v) for k, v in history.items()}
    elif isinstance(history, Sequence) and not isinstance(history, str):
        if not all(isinstance(r, Mapping) for r in history):
            raise DataError("history given as a list must hold one dict per epoch")
        keys = list(dict.fromkeys(str(k) for r in history for k in r))
        records = {k: [r.get(k) for r in history] for k in keys}
    else:
        raise DataError(f"history must be a list of dicts or a dict of lists, got {type(history)}")
    return {
        k: np.array([_to_float(v, k, i) for i, v in enumerate(vals)], dtype=float)
        for k, vals in records.items()
        if k == "epoch" or _is_loss_key(k)
    }


def loss_curves(
    history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    log_y: bool | str = "auto",
    reference: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """Plot loss per epoch: train and validation loss, their parts, and the best val epoch.

    Parameters
    ----------
    history : list of dict or dict of list
        One dict per epoch, or one list per key (all the same length). ``epoch`` gives the
        x values (default 1, 2, ...). Every key that is ``loss`` or ends in ``_loss``
        (``train_loss``, ``val_loss``, ``val_recon_loss``, ...) is drawn; ``val_*`` keys
        dashed. Missing or None values (e.g. validation every other epoch) are skipped;
        other keys are ignored. A pandas DataFrame works too.
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    log_y : bool or "auto", default "auto"
        Logarithmic loss axis. "auto" uses it when every value is positive and the largest
        is at least 20 times the smallest.
    reference : dict of str to list of (epoch, loss), optional
        Reference points drawn as labelled markers, e.g. the val losses a tutorial logged.
    title : str, optional
        Figure title (none by default).
    dpi : float, default 100
        Pixels per inch; the figure is 6.4 x 4.2 inches.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        No loss values, lists of different lengths, non-numeric values, malformed reference
        points, or ``log_y=True`` with a loss that is not positive.
    ConfigError
        ``log_y`` not True, False or "auto", or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    if not (log_y == "auto" or isinstance(log_y, bool | np.bool_)):
        raise ConfigError(f"log_y must be True, False or 'auto', got {log_y!r}")
    cols = _history_columns(history)
    n_epochs = len(next(iter(cols.values()))) if cols else 0
    epochs = cols.pop("epoch", np.arange(1, n_epochs + 1, dtype=float))
    if not np.isfinite(epochs).all():
        raise DataError("history['epoch'] must hold a finite number for every entry")
    loss_keys = [k for k, v in cols.items() if np.isfinite(v).any()]
    if not loss_keys:
        raise DataError(
            "history has no loss values to plot: expected keys such as 'train_loss' and "
            f"'val_loss' (or any ending in '_loss'), got {sorted(cols) or 'none'}"
        )
    first = [k for k in ("loss", "train_loss", "val_loss") if k in loss_keys]
    loss_keys = first + sorted(k for k in loss_keys if k not in first)

    refs = {}
    for name, points in (reference or {}).items():
        try:
            pts = np.asarray(points, dtype=float).reshape(-1, 2)
        except (TypeError, ValueError) as exc:
            raise DataError(f"reference[{name!r}] must be a list of (epoch, loss) pairs") from exc
        if not np.isfinite(pts).all():
            raise DataError(f"reference[{name!r}] contains NaN or infinite values")
        refs[str(name)] = pts

    values = np.concatenate(
        [cols[k][np.isfinite(cols[k])] for k in loss_keys] + [p[:, 1] for p in refs.values()]
    )
    if log_y == "auto":
        use_log = bool(values.min() > 0 and values.max() >= 20 * values.min())
    else:
        use_log = bool(log_y)
        if use_log and values.min() <= 0:
            raise DataError(f"log_y=True needs positive losses; the smallest is {values.min():g}")

    fig = _new_figure((6.4, 4.2), dpi, constrained=True)
    ax = fig.add_subplot()
    colours = {k: f"C{i % 10}" for i, k in enumerate(loss_keys)}
    for k in loss_keys:
        y = cols[k]
        ok = np.isfinite(y)
        main = k in ("loss", "train_loss", "val_loss")
        # Plot only the finite points so sparse validation still draws a connected line.
        ax.plot(
            epochs[ok],
            y[ok],
            color=colours[k],
            label=k,
            linestyle="--" if k.startswith("val_") else "-",
            linewidth=2 if main else 1.2,
            alpha=1.0 if main else 0.85,
            marker="o" if ok.sum() <= 30 else None,
            markersize=3,
        )
    if "val_loss" in loss_keys:
        val = np.where(np.isfinite(cols["val_loss"]), cols["val_loss"], np.inf)
        best = int(np.argmin(val))
        ax.axvline(epochs[best], color="0.5", linestyle=":", linewidth=1, zorder=0)
        ax.plot(
            epochs[best],
            val[best],
            linestyle="none",
            marker="*",
            markersize=14,
            color=colours["val_loss"],
            markeredgecolor="black",
            markeredgewidth=0.6,
            zorder=5,
            label=f"best val_loss {val[best]:.4g} (epoch {epochs[best]:g})",
        )
    for i, (name, pts) in enumerate(refs.items()):
        ax.plot(
            pts[:, 0],
            pts[:, 1],
            linestyle="none",
            marker="xs^Dv+"[i % 6],
            markersize=7,
            color=("black", "0.45", "tab:brown")[i % 3],
            markerfacecolor="none",
            markeredgewidth=1.3,
            zorder=4,
            label=name,
        )

    if use_log:
        ax.set_yscale("log")
    if np.allclose(epochs, np.round(epochs)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)" if use_log else "loss")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title)
    return _save_png(fig, path, dpi)


# ----------------------------------------------------------------------------- latent map


def _label_codes(labels, n: int, class_names) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """Map labels to ``0..k-1``; return ``(codes, sorted values, names, values are 0-9 ids)``."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"labels must have shape ({n},), one per code, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.number) or y.dtype == bool:
        if np.issubdtype(y.dtype, np.floating) and not (
            np.isfinite(y).all() and np.all(y == np.round(y))
        ):
            raise DataError("labels must be integers (class ids) or strings, not fractions/NaN")
        y = y.astype(np.int64)
    values, inverse = np.unique(y, return_inverse=True)

    def name(v):
        if class_names is None:
            return str(v)
        if isinstance(class_names, Mapping):
            return str(class_names.get(v.item(), v))
        if not np.issubdtype(values.dtype, np.integer) or not 0 <= v < len(class_names):
            raise DataError(f"label {v!r} has no entry in class_names ({len(class_names)} names)")
        return str(class_names[int(v)])

    digits = bool(
        np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() < 10
    )
    return inverse, values, [name(v) for v in values], digits


def _reduce_2d(
    z: np.ndarray, method: str, random_state, rng: np.random.Generator
) -> tuple[np.ndarray, str, str]:
    """Return ``(xy of shape (n, 2), x label, y label)`` for codes of shape (n, d)."""
    n, d = z.shape
    if d == 1:  # one code value per sample: the code on x, random jitter on y
        return np.column_stack([z[:, 0], rng.uniform(-0.35, 0.35, n)]), "z (1-D code)", "jitter"
    if method == "auto":
        method = "identity" if d == 2 else "pca"
    if method == "identity":
        return z, "z1", "z2"
    if method == "pca":
        from sklearn.decomposition import PCA

        if n < 2:
            raise DataError("PCA needs at least 2 codes")
        pca = PCA(n_components=2, random_state=random_state).fit(z)
        ratios = pca.explained_variance_ratio_

        def axis(i):
            r = ratios[i] if i < len(ratios) else math.nan
            return f"PCA {i + 1} ({100 * r:.0f}% var)" if np.isfinite(r) else f"PCA {i + 1}"

        return pca.transform(z), axis(0), axis(1)
    from sklearn.manifold import TSNE

    if n < 5:
        raise DataError(f"t-SNE needs at least 5 codes, got {n}")
    if d > 50:  # the usual practice: denoise and speed up t-SNE with PCA first
        from sklearn.decomposition import PCA

        z = PCA(n_components=50, random_state=random_state).fit_transform(z)
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, (n - 1) / 3),
        init="pca",
        learning_rate="auto",
        random_state=random_state,
    )
    note = " (after PCA to 50)" if d > 50 else ""
    return tsne.fit_transform(z), f"t-SNE 1{note}", "t-SNE 2"


def latent_map(
    codes: np.ndarray,
    path: str | os.PathLike,
    *,
    labels: Sequence | np.ndarray | None = None,
    method: str = "auto",
    class_names: Sequence[str] | Mapping | None = None,
    max_points: int = 5000,
    random_state: int | None = 0,
    title: str | None = None,
    dpi: float = 100,
) -> Path:
    """Scatter latent codes in 2-D, coloured by class.

    Parameters
    ----------
    codes : ndarray of shape (n_samples, latent_dim)
        Latent codes (an ``ndarray of shape (n_samples,)`` is read as latent_dim = 1).
        latent_dim = 2 is drawn as it is; larger ones are reduced to 2-D (see ``method``);
        latent_dim = 1 puts the code on x and random jitter on y (one band per class).
    path : str or PathLike
        Where to write the PNG (must end in ``.png``; folders are created).
    labels : ndarray of shape (n_samples,), optional
        Integer class ids (or strings) giving the colours: tab10 with a legend for up to 10
        classes (ids 0-9 keep their tab10 colour), tab20 up to 20, a colour bar beyond.
    method : {"auto", "pca", "tsne"}, default "auto"
        How to reduce latent_dim > 2: "pca" (fast; axis labels give the variance explained),
        "tsne" (scikit-learn t-SNE; slow past a few thousand points; PCA to 50 dims first if
        latent_dim > 50). "auto" means as-is for latent_dim = 2 and "pca" above.
    class_names : sequence of str or dict, optional
        Legend names: ``class_names[label]`` (a list indexed by class id, or a dict).
    max_points : int, default 5000
        At most this many codes are drawn (and reduced): a random subset, reproducible with
        ``random_state``.
    random_state : int or None, default 0
        Seed for subsampling, jitter, drawing order and t-SNE.
    title : str, optional
        Figure title; by default it says latent_dim, the method and how many points are
        shown. Pass "" for none.
    dpi : float, default 100
        Pixels per inch; the figure is 6.4 x 5 inches.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        Codes that are empty, not 1-D/2-D, NaN or inf; labels of the wrong length or not
        class ids; a label missing from ``class_names``; too few codes for PCA/t-SNE.
    ConfigError
        An unknown ``method``, ``max_points < 1``, or a path not ending in ``.png``.
    """
    path = _check_png_path(path)
    if method not in ("auto", "pca", "tsne"):
        raise ConfigError(f"method must be 'auto', 'pca' or 'tsne', got {method!r}")
    if int(max_points) < 1:
        raise ConfigError(f"max_points must be at least 1, got {max_points}")
    z = _numeric_array(codes, "codes")
    if z.ndim == 1:
        z = z[:, None]  # (n,) -> (n, 1)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise DataError(f"codes must have shape (n_samples, latent_dim), got {z.shape}")
    n_all, d = z.shape
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        raise DataError(f"codes contain NaN or infinite values in {int(bad.sum())} of {n_all} rows")
    y, values, names, digits = None, None, [], False
    if labels is not None:
        y, values, names, digits = _label_codes(labels, n_all, class_names)

    rng = np.random.default_rng(random_state)
    if n_all > max_points:
        keep = np.sort(rng.choice(n_all, size=int(max_points), replace=False))
        z, y = z[keep], (y[keep] if y is not None else None)
    z = z.astype(np.float64)
    n = len(z)
    xy, xlabel, ylabel = _reduce_2d(z, method, random_state, rng)
    if d == 1 and y is not None:
        xy[:, 1] += y  # one jittered band per class

    fig = _new_figure((6.4, 5.0), dpi, constrained=True)
    ax = fig.add_subplot()
    order = rng.permutation(n)  # random drawing order: no class hides under the next one
    size = float(np.clip(20 * math.sqrt(1000 / n), 3, 30))
    alpha = 0.8 if n > 1000 else 0.9
    if y is None:
        ax.scatter(xy[order, 0], xy[order, 1], s=size, alpha=alpha, color="C0", linewidths=0)
    else:
        k = len(names)
        ids = np.issubdtype(values.dtype, np.integer)
        if k <= 20:
            cmap = colormaps["tab10" if k <= 10 else "tab20"]
            # Class ids 0-9 keep their own tab10 colour, so digit 3 looks the same everywhere.
            idx = values.astype(int) if digits else np.arange(k)
            palette = np.asarray(cmap.colors)[idx]
            ax.scatter(
                xy[order, 0], xy[order, 1], c=palette[y[order]], s=size, alpha=alpha, linewidths=0
            )
            handles = [
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="o",
                    markersize=6,
                    color=palette[i],
                    label=names[i],
                )
                for i in range(k)
            ]
            ax.legend(
                handles=handles,
                title="class",
                loc="upper left",
                bbox_to_anchor=(1.01, 1),
                fontsize=8,
                title_fontsize=9,
                frameon=False,
                borderaxespad=0,
            )
        else:
            sc = ax.scatter(
                xy[order, 0],
                xy[order, 1],
                c=(values[y] if ids else y)[order],
                cmap="viridis",
                s=size,
                alpha=alpha,
                linewidths=0,
            )
            fig.colorbar(sc, ax=ax, label="class id" if ids else "class (rank of sorted names)")
    if d == 1:
        if y is not None:
            ax.set_yticks(range(len(names)), names)
            ylabel = "class (with jitter)"
        else:
            ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.25)
    if title is None:
        if d == 1:
            how = "code vs jitter"
        elif d == 2 and method == "auto":
            how = "shown as is"
        else:
            how = "t-SNE" if method == "tsne" else "PCA"
        shown = f"{n:,} of {n_all:,} points" if n < n_all else f"{n:,} points"
        title = f"Latent codes (latent_dim={d}, {how}; {shown})"
    if title:
        ax.set_title(title, fontsize=10)
    return _save_png(fig, path, dpi)
