"""Image retrieval with autoencoder codes on MNIST and Fashion-MNIST: float codes and binary hashes.

The protocol of the image-hashing literature: the 10,000 test images are the queries, the 60,000
training images the database, and a database image is relevant when it has the query's label.
Each representation is searched exhaustively (exact search) and scored by precision@10,
precision@100 and full-ranking mAP (every query ranks the whole database; ties, frequent with
Hamming distances, are broken by database index); see ``aekit.tasks.retrieval.metrics``.
Representations, side by side:

* raw pixels, 784 dims, euclidean;
* PCA-32 (scikit-learn PCA fitted on the training images), euclidean (and cosine);
* AE-32 (dense, plain), the reference: the 784-1000-500-250-32 autoencoder (``dense_ae`` preset
  ``hinton2006``, linear code, ELU, sigmoid output with cross-entropy, Adam 1e-3, batch 128)
  trained to reconstruct the training images; euclidean (and cosine);
* AE-32 (ours): ``conv_ae`` preset ``wide`` (32 and 64 3x3 filters, each followed by a 2x2
  max-pool) with a dense 32-unit linear code, trained as a *denoising* autoencoder on a geometric
  corruption (``--denoise``, default ``shift:1``: each input moved by up to 1 pixel, the target
  left in place), so the code learns to ignore where the object sits. Measured on 3,000 queries
  before choosing it (10 epochs, mAP euclidean / cosine; PCA-32: MNIST .403 / .441, Fashion .456 /
  .476): dense plain .414 / .436 and .481 / .497; dense + shift:2+mask:0.3 .490 / .519 and .461 /
  .487 (helps MNIST, hurts Fashion); conv plain - and .492 / .518; conv + mask:0.3 - and .485 /
  .509; conv + shift:1 .456 / .507 and .495 / .520 (20 epochs: .495 / .523);
* AE binary codes, 32 and 64 bits (``--bits-arch``, default dense): the hinton2006 network with
  logistic code units and Gaussian noise (std ``--code-noise``, default 8) added to their input
  while training, so they saturate (Krizhevsky & Hinton 2011, "semantic hashing"); bits = code >
  0.5; Hamming distance. With std 4 the 64-bit codes reached mAP 0.408 (MNIST) and 0.434 (Fashion-
  MNIST), below raw pixels; std 8 gave 0.429 and 0.451, just above them (raw pixels: 0.425 and
  0.447);
* PCA + random rotation hashing (PCA to b dims, a random orthogonal rotation, sign) and ITQ
  (Gong & Lazebnik 2011: the rotation learnt by 50 alternating steps), 32 and 64 bits; Hamming.

Query time is the wall time of an exact top-100 search of all queries with faiss's flat indexes
(``IndexFlatL2`` / ``IndexFlatIP`` / ``IndexBinaryFlat`` on packed bits) with ``--threads``
threads; encoding the queries is not included (it is reported separately per model).

Targets: AE-32 beats PCA-32 by >= 5 mAP points on both data sets; the 64-bit AE binary codes beat
raw-pixel euclidean search in mAP.

    python benchmarks/retrieval.py               # full run (10 epochs per model), ~25 min on 2 cores
    python benchmarks/retrieval.py --quick       # smoke run: 5k database, 1k queries, 2 epochs

Writes benchmarks/results/retrieval.json and benchmarks/results/figures/retrieval_<set>.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("AEKIT_DATA_HOME", "/work/shared/datasets")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_dataset, parse_corruption  # noqa: E402
from aekit.models.conv import ConvAE  # noqa: E402
from aekit.tasks.retrieval.metrics import knn_search, retrieval_report  # noqa: E402
from aekit.training import reconstruction_metrics  # noqa: E402
from aekit.viz import image_strip  # noqa: E402

DATASETS = ("mnist", "fashion-mnist")
MAP_MARGIN = 0.05  # AE-32 must beat PCA-32 by this much mAP


# ----------------------------------------------------------------------------- representations


def as_input(model: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    """``x`` shaped for ``model``: conv models take (N, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.reshape(len(t), *model.input_shape) if isinstance(model, ConvAE) else t


def train_ae(x_train: np.ndarray, *, latent_dim: int, code_activation: str, code_noise: float, args,
             label: str, denoise: str | None = None, arch: str = "dense") -> tuple[torch.nn.Module, dict[str, Any]]:
    """An autoencoder with a ``latent_dim`` code trained on ``x_train`` (to undo the corruption
    ``denoise`` when given: a denoising autoencoder, targets clean). ``arch`` "dense": the hinton2006
    784-1000-500-250-code net (ELU); "conv": ``conv_ae`` preset ``wide`` (32 and 64 3x3 filters, each
    followed by a 2x2 max-pool) with a dense ``latent_dim`` bottleneck."""
    aekit.seed_everything(args.seed)
    opts = dict(latent_dim=latent_dim, code_activation=code_activation, output="sigmoid", loss="bce")
    if code_noise:
        opts["code_noise"] = code_noise
    if arch == "conv":
        shape = tuple(x_train.shape[1:]) if x_train.ndim == 4 else (1, *x_train.shape[1:])
        model = aekit.create_model("conv_ae", "wide", input_shape=shape, **opts)
    else:
        model = aekit.create_model("dense_ae", "hinton2006", input_shape=tuple(x_train.shape[1:]),
                                   activation="elu", **opts)
    cfg = aekit.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            threads=args.threads, progress=False)

    def log(trainer, rec):
        print(f"  [{label}] epoch {rec['epoch']:3d}: train loss {rec['train_loss']:.5f}  "
              f"{rec['samples_per_s']:.0f} samples/s", flush=True)

    t = time.perf_counter()
    corruption = parse_corruption(denoise)
    hist = aekit.Trainer(cfg, callbacks=[log], corruption=corruption).fit(model, as_input(model, x_train))
    info = {"label": label, "latent_dim": latent_dim, "code_activation": code_activation, "code_noise": code_noise,
            "denoise": corruption.spec if corruption else None, "arch": arch,
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": "adam",
            "loss": "bce", "config": {k: (list(v) if isinstance(v, tuple) else v)
                                      for k, v in vars(model.config).items()},
            "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": time.perf_counter() - t, "samples_per_s": hist.steady_samples_per_s(),
            "final_train_loss": hist.records[-1]["train_loss"]}
    model.eval()
    return model, info


@torch.no_grad()
def encode(model: torch.nn.Module, x: np.ndarray, batch: int = 2048) -> tuple[np.ndarray, float]:
    model.eval()
    t = time.perf_counter()
    out = [model.encode(as_input(model, x[i:i + batch])).reshape(len(x[i:i + batch]), -1).float().numpy()
           for i in range(0, len(x), batch)]
    return np.concatenate(out), time.perf_counter() - t


def random_orthogonal(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))  # Haar-distributed


def itq_rotation(v: np.ndarray, iters: int, seed: int) -> np.ndarray:
    """Iterative quantization: R minimising ||B - V R||_F with B = sign(V R) (Gong & Lazebnik 2011)."""
    r = random_orthogonal(v.shape[1], seed)
    for _ in range(iters):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(b.T @ v)  # maximise tr(B^T V R): R = (U W^T)^T for svd(B^T V) = U S W^T
        r = (u @ wt).T
    return r


def pca_hash(x_train: np.ndarray, x_test: np.ndarray, bits: int, *, itq_iters: int, seed: int):
    """Bits of PCA-to-``bits`` projections after a random (itq_iters=0) or ITQ rotation."""
    t = time.perf_counter()
    pca = PCA(bits, random_state=seed).fit(x_train)
    v_tr, v_te = pca.transform(x_train), pca.transform(x_test)
    r = itq_rotation(v_tr, itq_iters, seed) if itq_iters else random_orthogonal(bits, seed)
    b_tr = (v_tr @ r >= 0).astype(np.uint8)
    b_te = (v_te @ r >= 0).astype(np.uint8)
    return b_tr, b_te, time.perf_counter() - t


# ----------------------------------------------------------------------------- one data set


def run_dataset(name: str, args) -> dict[str, Any]:
    ds = load_dataset(name, download=False)
    x_tr, y_tr, x_te, y_te = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    if args.n_db:
        x_tr, y_tr = x_tr[: args.n_db], y_tr[: args.n_db]
    if args.n_queries:
        x_te, y_te = x_te[: args.n_queries], y_te[: args.n_queries]
    flat_tr = np.ascontiguousarray(x_tr.reshape(len(x_tr), -1), dtype=np.float32)
    flat_te = np.ascontiguousarray(x_te.reshape(len(x_te), -1), dtype=np.float32)
    print(f"\n=== {name}: {len(x_te)} queries (test) x {len(x_tr)} database images (train), "
          f"{flat_tr.shape[1]} pixels", flush=True)
    rows: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []

    def add(method: str, kind: str, q, db, metric: str, fit_seconds: float | None = None,
            encode_seconds: float | None = None, **extra) -> dict[str, Any]:
        rep = retrieval_report(q, y_te, db, y_tr, metric=metric, ks=(10, 100))
        row = {"method": method, "kind": kind, "size": q.shape[1], "metric": metric,
               "p10": rep["precision@10"], "p100": rep["precision@100"], "map": rep["map"],
               "query_s": rep["query_seconds"], "qps": rep["queries_per_s"], "fit_s": fit_seconds,
               "encode_s": encode_seconds, "eval_s": rep["eval_seconds"], "search": rep["search"],
               "code_bytes": q.shape[1] // 8 if metric == "hamming" else 4 * q.shape[1], **extra}
        rows.append(row)
        print(f"  {method:28s} P@10 {row['p10']:.4f}  P@100 {row['p100']:.4f}  mAP {row['map']:.4f}  "
              f"query {row['query_s']:.2f} s ({rep['search']}), ranking {rep['eval_seconds']:.1f} s", flush=True)
        return row

    add("raw pixels", "float", flat_te, flat_tr, "euclidean")

    t = time.perf_counter()
    pca = PCA(args.latent_dim, random_state=args.seed).fit(flat_tr)
    p_tr, p_te = pca.transform(flat_tr), pca.transform(flat_te)
    pca_seconds = time.perf_counter() - t
    add(f"PCA-{args.latent_dim}", "float", p_te, p_tr, "euclidean", pca_seconds,
        explained_variance=float(pca.explained_variance_ratio_.sum()))
    add(f"PCA-{args.latent_dim}, cosine", "float", p_te, p_tr, "cosine", pca_seconds)

    variants = [("dense, plain", "dense", None)] if args.plain else []
    variants.append((f"{args.arch}, ours", args.arch, args.denoise or None))
    float_row = None
    for tag, arch, denoise in variants:
        what = f"AE-{args.latent_dim} ({tag}{', ' + denoise if denoise else ''})"
        model, info = train_ae(x_tr, latent_dim=args.latent_dim, code_activation="linear", code_noise=0.0,
                               args=args, label=f"{name} {what}", denoise=denoise, arch=arch)
        info["test_sq_err_per_image"] = reconstruction_metrics(model, as_input(model, x_te).numpy())["sq_err_per_image"]
        z_tr, s_tr = encode(model, x_tr)
        z_te, s_te = encode(model, x_te)
        info["encode_seconds_db"], info["encode_seconds_queries"] = s_tr, s_te
        models.append(info)
        float_row = add(what, "float", z_te, z_tr, "euclidean", info["train_seconds"], s_te, epochs=args.epochs)
        add(f"{what}, cosine", "float", z_te, z_tr, "cosine", info["train_seconds"], s_te, epochs=args.epochs)
    figure = None
    if not args.no_figure:
        figure = retrieval_figure(name, ds, x_tr, y_tr, x_te, y_te, z_tr, z_te, args)
    del model

    for bits in args.bits:
        model, info = train_ae(x_tr, latent_dim=bits, code_activation="sigmoid", code_noise=args.code_noise,
                               args=args, label=f"{name} AE-{bits}bit", denoise=args.bits_denoise or None,
                               arch=args.bits_arch)
        info["test_sq_err_per_image"] = reconstruction_metrics(model, as_input(model, x_te).numpy())["sq_err_per_image"]
        c_tr, s_tr = encode(model, x_tr)
        c_te, s_te = encode(model, x_te)
        info["encode_seconds_db"], info["encode_seconds_queries"] = s_tr, s_te
        # how binary the code already is: share of code values within 0.1 of 0 or 1
        info["saturated_share_test"] = float(((c_te < 0.1) | (c_te > 0.9)).mean())
        info["bit_balance_test"] = float((c_te > 0.5).mean())
        models.append(info)
        add(f"AE {bits}-bit (ours)", "binary", (c_te > 0.5).astype(np.uint8), (c_tr > 0.5).astype(np.uint8),
            "hamming", info["train_seconds"], s_te, epochs=args.epochs, saturated_share=info["saturated_share_test"])
        del model

    for bits in args.bits:
        b_tr, b_te, secs = pca_hash(flat_tr, flat_te, bits, itq_iters=0, seed=args.seed)
        add(f"PCA-RR {bits}-bit", "binary", b_te, b_tr, "hamming", secs)
        if args.itq_iters:
            b_tr, b_te, secs = pca_hash(flat_tr, flat_te, bits, itq_iters=args.itq_iters, seed=args.seed)
            add(f"ITQ {bits}-bit", "binary", b_te, b_tr, "hamming", secs)

    by = {r["method"]: r for r in rows}
    pca_row = by[f"PCA-{args.latent_dim}"]
    cos_row, pca_cos = by[f"{float_row['method']}, cosine"], by[f"PCA-{args.latent_dim}, cosine"]
    checks = {
        f"{float_row['method']} mAP >= PCA-{args.latent_dim} mAP + {MAP_MARGIN:.2f} (euclidean)": {
            "value": float_row["map"] - pca_row["map"], "target": MAP_MARGIN,
            "met": float_row["map"] >= pca_row["map"] + MAP_MARGIN},
        f"{float_row['method']} mAP >= PCA-{args.latent_dim} mAP + {MAP_MARGIN:.2f} (both cosine)": {
            "value": cos_row["map"] - pca_cos["map"], "target": MAP_MARGIN,
            "met": cos_row["map"] >= pca_cos["map"] + MAP_MARGIN},
    }
    big = max(args.bits)
    bin_row = by.get(f"AE {big}-bit (ours)")
    if bin_row is not None:
        checks[f"AE {big}-bit mAP > raw-pixel mAP"] = {
            "value": bin_row["map"] - by["raw pixels"]["map"], "target": 0.0,
            "met": bin_row["map"] > by["raw pixels"]["map"]}
    return {"dataset": name, "n_queries": len(x_te), "n_database": len(x_tr), "rows": rows, "models": models,
            "checks": checks, "figure": str(figure) if figure else None}


def retrieval_figure(name, ds, x_tr, y_tr, x_te, y_te, z_tr, z_te, args) -> Path:
    """One row per query (the first test image of each of the first classes): the query and its
    10 nearest training images by the AE float codes, euclidean distance under each."""
    n_nn = 10
    picks = [int(np.flatnonzero(y_te == c)[0]) for c in np.unique(y_te)[: args.figure_queries]]
    dist, idx = knn_search(z_te[picks], z_tr, n_nn, metric="euclidean")
    classes = getattr(ds, "class_names", None)

    def lab(y) -> str:
        return str(classes[int(y)]) if classes is not None else str(int(y))

    images, captions = [], []
    for row, q in enumerate(picks):
        images.append(x_te[q])
        captions.append(f"query\n{lab(y_te[q])}")
        for j in range(n_nn):
            images.append(x_tr[idx[row, j]])
            mark = "" if y_tr[idx[row, j]] == y_te[q] else " x"
            captions.append(f"{dist[row, j]:.2f}{mark}")
    path = Path(args.figures_dir) / f"retrieval_{name}.png"
    return image_strip(np.stack(images), path, captions=captions, ncols=n_nn + 1,
                       title=f"{name}: query and its {n_nn} nearest training images by AE-{args.latent_dim} "
                             f"codes (euclidean distance; x = other class)")


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--epochs", type=int, default=10, help="training epochs of each autoencoder")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--latent-dim", type=int, default=32, help="float code size (and PCA size)")
    ap.add_argument("--bits", type=int, nargs="+", default=[32, 64], help="binary code lengths")
    ap.add_argument("--code-noise", type=float, default=8.0, help="std of the noise on the binary code's input")
    ap.add_argument("--denoise", default="shift:1",
                    help="corruption our float-code autoencoder learns to undo; '' for none")
    ap.add_argument("--bits-arch", choices=("dense", "conv"), default="dense",
                    help="architecture of the binary-code autoencoders")
    ap.add_argument("--bits-denoise", default="", help="corruption the binary-code autoencoders learn to undo")
    ap.add_argument("--no-plain", dest="plain", action="store_false",
                    help="skip the plain (dense, no corruption) AE-32 reference row")
    ap.add_argument("--arch", choices=("dense", "conv"), default="conv",
                    help="our float-code autoencoder: dense hinton2006 or conv_ae wide (with a dense bottleneck)")
    ap.add_argument("--itq-iters", type=int, default=50, help="ITQ rotation steps (0: skip ITQ)")
    ap.add_argument("--threads", type=int, default=2, help="torch and faiss threads")
    ap.add_argument("--n-db", type=int, default=None, help="first N training images as the database")
    ap.add_argument("--n-queries", type=int, default=None, help="first N test images as the queries")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure-queries", type=int, default=10, help="rows of the retrieval figure")
    ap.add_argument("--no-figure", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5,000 database images, 1,000 queries, 2 epochs")
    ap.add_argument("--results-dir", default=None, help="folder for the JSON (default benchmarks/results; "
                    "with --quick a temporary folder, so that smoke runs keep the real results)")
    ap.add_argument("--figures-dir", default=None, help="default <results dir>/figures")
    ap.add_argument("--out", default="retrieval", help="results/<OUT>.json (default retrieval)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_db = min(args.n_db or 5000, 5000)
        args.n_queries = min(args.n_queries or 1000, 1000)
        args.epochs = 2
    out_dir = _common.results_dir(args)
    args.figures_dir = args.figures_dir or str(out_dir / "figures")
    torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    env = _common.env_info()
    per_set = [run_dataset(name, args) for name in args.datasets]

    cols = ["method", "size", "metric", "p10", "p100", "map", "query_s", "qps", "fit_s"]
    heads = ["representation", "dims/bits", "distance", "P@10", "P@100", "mAP", "query s", "queries/s", "fit s"]
    for res in per_set:
        _common.print_table(res["rows"], cols, heads,
                            title=f"{res['dataset']}: {res['n_queries']} test queries x {res['n_database']} "
                                  f"training images, exact search, {args.threads} threads, AE {args.epochs} epochs")
    _common.print_table([{"dataset": r["dataset"], **m} for r in per_set for m in r["models"]],
                        ["dataset", "label", "epochs", "train_seconds", "samples_per_s", "test_sq_err_per_image",
                         "saturated_share_test"],
                        ["data set", "model", "epochs", "train s", "samples/s", "test sq.err/image", "saturated"],
                        title="autoencoders trained (saturated: share of code values < 0.1 or > 0.9)")
    print()
    all_met = True
    for res in per_set:
        for what, c in res["checks"].items():
            all_met &= c["met"]
            print(f"check {res['dataset']}: {what}: {'met' if c['met'] else 'NOT met'} "
                  f"(difference {c['value']:+.4f})")

    wall = time.perf_counter() - t_start
    payload = {
        "benchmark": "retrieval",
        "command": _common.command_line(),
        "env": env,
        "quick": args.quick,
        "measured": ("exact retrieval, test images as queries against the training images, relevance = same "
                     "label: precision@10, precision@100, full-ranking mAP (ties by database index), wall time "
                     "of an exact top-100 faiss search of all queries; for raw pixels, PCA, our autoencoder's "
                     "float codes and binary codes, and PCA hashing (random rotation, ITQ)"),
        "settings": dict(vars(args)),
        "datasets": per_set,
        "targets_met": bool(all_met),
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": wall,
    }
    path = _common.write_json(args.out, payload, out_dir)
    print(f"wall time {wall / 60:.1f} min; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
