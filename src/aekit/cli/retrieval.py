"""``aekit index build|add``, ``aekit search``, ``aekit embed``, ``aekit map``: search images by their codes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._utils import atomic_path
from ..errors import ConfigError
from ..tasks.retrieval.sources import NAMED, collection_images, is_dataset, read_images  # noqa: F401

index_app = typer.Typer(no_args_is_help=True, help="Build and grow image-search indexes over autoencoder codes.")
# the readers moved into the library (aekit.tasks.retrieval.sources); these names stay for old imports
_is_dataset = is_dataset


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
    search.fit(images, n=n)
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
    before = search.size
    search.add(images, n=n)  # integer ids continue after the collection's
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
        neigh = search.images(ids[:m])
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
