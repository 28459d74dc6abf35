"""``aekit index build|add``, ``aekit search``, ``aekit embed``, ``aekit map``: search images by their codes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import atomic_path
from ..errors import ConfigError, DataError

index_app = typer.Typer(no_args_is_help=True, help="Build and grow image-search indexes over autoencoder codes.")
NAMED = ("digits", "mnist", "fashion-mnist")


def _is_dataset(spec: str) -> bool:
    return spec.split(":")[0] in NAMED and not Path(spec).exists()


def read_images(spec: str, input_shape: tuple[int, ...], *, split: str = "train", n: int | None = None):
    """Images for the CLI: a named data set (``mnist``, ``mnist:test``), a folder, an image, or ``.npy``.

    Returns (images, ids, labels, collection) where ``collection`` records where the images came
    from (to show neighbours in figures later).
    """
    from ..data import load_dataset
    from ..tasks.retrieval.search import as_image_batch

    if _is_dataset(spec):
        name, _, which = spec.partition(":")
        which = which or split
        if which not in ("train", "test"):
            raise ConfigError(f"{spec!r}: use NAME, NAME:train or NAME:test")
        ds = load_dataset(name)
        x = ds.x_train if which == "train" else ds.x_test
        y = ds.y_train if which == "train" else ds.y_test
        if n is not None:
            x, y = x[:n], (None if y is None else y[:n])
        x, _ = as_image_batch(x, input_shape)
        return x, np.arange(len(x)), y, {"kind": "dataset", "name": name, "split": which}
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{spec} is neither an existing file or folder nor a data set name ({', '.join(NAMED)})")
    x, names = as_image_batch(path, input_shape)
    if n is not None:
        x, names = x[:n], (None if names is None else names[:n])
    files = path.is_dir() or path.suffix.lower() not in (".npy", ".npz")  # a folder or one image file
    ids = names if names is not None and files else np.arange(len(x))
    return x, ids, None, {"kind": "files" if files else "array", "name": str(path.resolve())}


def collection_images(search, ids: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """The stored images behind ``ids`` (for figures): from the data set or files the index came from."""
    from ..data import load_dataset
    from ..tasks.retrieval.search import as_image_batch

    flat = np.asarray(ids).ravel()
    out = np.zeros((len(flat), *input_shape), np.float32)  # blank where an image cannot be found
    cache: dict[tuple[str, str], np.ndarray] = {}
    for src in getattr(search, "collections_", []):
        if src.get("offset") is None or not np.issubdtype(flat.dtype, np.integer):
            continue
        local = flat - src["offset"]
        hit = (local >= 0) & (local < src["count"])
        if not hit.any():
            continue
        if src["kind"] == "dataset":
            key = (src["name"], src["split"])
            if key not in cache:
                ds = load_dataset(src["name"])
                cache[key] = ds.x_train if src["split"] == "train" else ds.x_test
            out[hit] = as_image_batch(cache[key][local[hit]], input_shape)[0]
        elif Path(src["name"]).is_file():
            arr = as_image_batch(Path(src["name"]), input_shape)[0]
            out[hit] = arr[local[hit]]
    for i, item in enumerate(flat):
        p = Path(str(item))
        if isinstance(item, str) and p.is_file():
            try:
                out[i] = as_image_batch(p, input_shape)[0][0]
            except Exception:  # noqa: BLE001 - a file gone or changed since indexing: shown blank
                pass
    return out.reshape(*np.shape(ids), *input_shape)


@index_app.command("build")
def build_cmd(
    model: Path = typer.Option(..., "--model", help="run folder or saved model (the encoder)"),
    images: str = typer.Option(..., "--images", help="DIR | images.npy | a data set: mnist, fashion-mnist, digits"),
    out: Path = typer.Option(..., "--out", help="index folder to create"),
    bits: int | None = typer.Option(None, help="search binary codes by Hamming distance (the model's code size)"),
    metric: str = typer.Option("euclidean", help="euclidean | cosine | hamming (same as --bits)"),
    index: str = typer.Option("auto", help="auto | exact | hnsw | ivfpq"),
    n: int | None = typer.Option(None, help="only the first N images"),
    overwrite: bool = typer.Option(False, help="replace an existing index folder"),
) -> None:
    """Encode a collection of images and index their codes."""
    from ..tasks.retrieval.search import ImageSearch
    from .main import console

    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite")
    metric = "hamming" if bits else metric
    search = ImageSearch(model, metric=metric, index=index)
    search._setup()
    if bits and bits != search.code_dim_:
        raise ConfigError(
            f"--bits {bits}: the model's code has {search.code_dim_} values; train a binary-code model with "
            f"`aekit train --latent-dim {bits} --binary-code` (a sigmoid code trained with noise)"
        )
    t0 = time.perf_counter()
    x, ids, _, collection = read_images(images, search.model_.input_shape, n=n)
    search.fit(x, ids)
    collection.update(offset=0 if not isinstance(ids, list) else None, count=len(x))
    search.collections_ = [collection]
    search.save(out, overwrite=overwrite)
    console.print(
        f"indexed {search.size:,} images from {images} in {time.perf_counter() - t0:.1f} s: {search.code_dim_}"
        f"{' bits' if metric == 'hamming' else '-value codes'}, {metric}, {search.index_.kind_} index "
        f"-> [bold]{out}[/bold]"
    )


@index_app.command("add")
def add_cmd(
    index_dir: Path = typer.Argument(..., help="index folder from `aekit index build`"),
    images: str = typer.Option(..., "--images", help="DIR | images.npy | a data set"),
    model: Path | None = typer.Option(None, "--model", help="check that this is the model the index was built with"),
    n: int | None = typer.Option(None, help="only the first N images"),
) -> None:
    """Add images to an index; the saved index changes only when everything succeeded."""
    from .main import console

    search = _load_index(index_dir)
    if model is not None:
        search.check_encoder(model)
    x, ids, _, collection = read_images(images, search.model_.input_shape, n=n)
    before = search.size
    integer_ids = not isinstance(ids, list)
    search.add(x, None if integer_ids else ids)  # integer ids continue after the collection's
    collection.update(offset=before if integer_ids else None, count=len(x))
    search.collections_ = [*getattr(search, "collections_", []), collection]
    search.save(index_dir, overwrite=True)
    console.print(f"added {search.size - before:,} images to {index_dir} ({search.size:,} in all)")


def _load_index(path: Path):
    from .. import load
    from ..io import read_meta

    doc = read_meta(path)
    if doc.get("kind") != "image_search":
        raise ConfigError(f"{path} holds a {doc.get('kind')!r}, not an image index; build one with `aekit index build`")
    return load(path)


def search_cmd(
    index_dir: Path = typer.Argument(..., help="index folder"),
    query: str = typer.Option(..., "--query", help="IMAGE | DIR | images.npy | a data set's test images (mnist)"),
    k: int = typer.Option(10, min=1, help="neighbours per query"),
    n: int = typer.Option(8, min=1, help="queries shown in the figure (and searched, for data sets)"),
    out: Path | None = typer.Option(None, "--out", help="figure (.png): each query, then its neighbours"),
    json_out: Path | None = typer.Option(None, "--json", help="write ids and distances as JSON"),
) -> None:
    """Find the nearest images of each query image."""
    from .._utils import write_json
    from ..viz import image_strip
    from .main import console

    search = _load_index(index_dir)
    shape = search.model_.input_shape
    x, qids, _, _ = read_images(query, shape, split="test", n=n if _is_dataset(query) else None)
    t0 = time.perf_counter()
    ids, dist = search.query(x, k=k)
    seconds = time.perf_counter() - t0
    for i in range(min(len(x), 20)):
        near = ", ".join(f"{_short(a)} ({d:.3g})" for a, d in zip(ids[i][:5], dist[i][:5]))
        console.print(f"{_short(qids[i])}: {near}{' ...' if k > 5 else ''}")
    console.print(f"{len(x)} queries in {seconds * 1000:.1f} ms ({search.index_.kind_} {search.metric} index, "
                  f"{search.size:,} images)")
    if out is not None:
        m = min(n, len(x))
        neigh = collection_images(search, ids[:m], shape)
        tiles = np.concatenate([x[:m, None], neigh], axis=1).reshape(m * (ids.shape[1] + 1), *shape)
        captions = []
        for i in range(m):
            captions.append("query")
            captions += [f"d={d:.2f}" if search.metric != "hamming" else f"{int(d)} bits" for d in dist[i]]
        image_strip(tiles, out, captions=captions, ncols=ids.shape[1] + 1,
                    title=f"nearest neighbours by autoencoder code ({search.metric}, {search.size:,} images)")
        console.print(f"figure: [bold]{out}[/bold]")
    if json_out is not None:
        write_json(json_out, {"queries": [str(q) for q in qids], "ids": [[_jsonable(a) for a in r] for r in ids],
                              "distances": dist.tolist(), "seconds": seconds})


def _short(v: Any) -> str:
    s = str(v)
    return Path(s).name if "/" in s else s


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def embed_cmd(
    run: Path = typer.Argument(..., help="run folder or saved model"),
    images: str = typer.Option(..., "--images", help="DIR | images.npy | a data set (train split; NAME:test)"),
    out: Path = typer.Option(..., "--out", help="codes .npy (and OUT.ids.json for folders)"),
    n: int | None = typer.Option(None, help="only the first N images"),
) -> None:
    """Write the codes of images as a .npy array (n, code_dim)."""
    from .._utils import write_json
    from ..tasks.retrieval.search import ImageSearch
    from .main import console

    if out.suffix.lower() != ".npy":
        raise ConfigError(f"--out must end in .npy, got {out}")
    search = ImageSearch(run)
    search._setup()
    x, ids, _, _ = read_images(images, search.model_.input_shape, n=n)
    codes = search._codes(x)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, codes)
    if isinstance(ids, list):
        write_json(out.with_suffix(".ids.json"), ids)
    console.print(f"{len(codes):,} codes of {codes.shape[1]} values -> [bold]{out}[/bold]")


def map_cmd(
    run: Path = typer.Argument(..., help="run folder or saved model"),
    dataset: str = typer.Option("digits", help="data set (its test split) or images"),
    out: Path = typer.Option(Path("map.png"), "--out", help="figure (.png)"),
    method: str = typer.Option("auto", help="auto | pca | tsne"),
    n: int = typer.Option(5000, help="at most this many images"),
) -> None:
    """A 2-D map of the codes (PCA or t-SNE), coloured by label."""
    from ..tasks.retrieval.search import ImageSearch
    from ..viz import latent_map
    from .main import console

    search = ImageSearch(run)
    search._setup()
    x, _, labels, _ = read_images(dataset, search.model_.input_shape, split="test", n=n)
    codes = search._codes(x).astype(np.float32)
    latent_map(codes, out, labels=labels, method=method, title=f"codes of {dataset} ({run.name})")
    console.print(f"{len(codes):,} codes -> [bold]{out}[/bold]")
