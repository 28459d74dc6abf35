"""Keras side of `reference_keras.py`: train one tutorial model and report times and losses.

Runs inside the Keras virtual environment (TensorFlow CPU + Keras 3), never in aekit's own
environment, and imports nothing from aekit. The orchestrator writes the data as .npy files
(float32, shape (N, 1, 28, 28)) and reads back the JSON this script writes.

Usage (normally called by reference_keras.py):
    python _keras_worker.py --model conv --data DIR --epochs 3 --batch-size 128 --threads 1 \
        --seed 0 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=["dense", "conv", "denoiser"])
    p.add_argument("--data", required=True, help="folder with x_train_in.npy and x_test_in.npy, "
                   "plus x_train_target.npy and x_test_target.npy when targets differ from inputs")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-batch-size", type=int, default=1000)
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def build_model(keras, name: str):
    """The tutorial's models, layer for layer (Keras defaults: glorot_uniform, zero biases)."""
    layers = keras.layers
    if name == "dense":
        inp = keras.Input(shape=(784,))
        h = layers.Dense(128, activation="relu")(inp)
        h = layers.Dense(32, activation="relu")(h)
        z = layers.Dense(2, activation="relu", name="latent_space")(h)
        h = layers.Dense(32, activation="relu")(z)
        h = layers.Dense(128, activation="relu")(h)
        out = layers.Dense(784, activation="sigmoid")(h)
        expected = 210_130
    else:
        c1, c2 = (16, 8) if name == "conv" else (32, 64)
        inp = keras.Input(shape=(28, 28, 1))
        h = layers.Conv2D(c1, 3, activation="relu", padding="same")(inp)
        h = layers.MaxPooling2D(2, padding="same")(h)
        h = layers.Conv2D(c2, 3, activation="relu", padding="same")(h)
        z = layers.MaxPooling2D(2, padding="same", name="latent_space")(h)
        h = layers.Conv2D(c2, 3, activation="relu", padding="same")(z)
        h = layers.UpSampling2D(2)(h)
        h = layers.Conv2D(c1, 3, activation="relu", padding="same")(h)
        h = layers.UpSampling2D(2)(h)
        out = layers.Conv2D(1, 3, activation="sigmoid", padding="same")(h)
        expected = 3_217 if name == "conv" else 74_497
    model = keras.Model(inp, out, name=f"tutorial_{name}")
    n_params = model.count_params()
    if n_params != expected:
        raise SystemExit(f"{name}: built {n_params} parameters, the tutorial has {expected}")
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Thread counts must be fixed before TensorFlow starts its thread pools.
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    def load(name: str, default=None):
        path = os.path.join(args.data, f"{name}.npy")
        if default is not None and not os.path.exists(path):
            return default  # an autoencoder: the target is the input
        x = np.load(path)  # (N, 1, 28, 28) float32
        if args.model == "dense":
            return x.reshape(len(x), 784)
        return x.reshape(len(x), 28, 28, 1)  # C == 1, so NCHW -> NHWC is a reshape

    x_in = load("x_train_in")
    y = load("x_train_target", default=x_in)
    xt_in = load("x_test_in")
    yt = load("x_test_target", default=xt_in)

    keras.utils.set_random_seed(args.seed)
    model = build_model(keras, args.model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss="binary_crossentropy")

    class EpochTimer(keras.callbacks.Callback):
        """Training time of each epoch: from its start until validation starts (or it ends)."""

        def __init__(self):
            super().__init__()
            self.t0 = 0.0
            self.train_end: float | None = None
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.train_end = None
            self.t0 = time.perf_counter()

        def on_test_begin(self, logs=None):
            if self.train_end is None:
                self.train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = self.train_end if self.train_end is not None else time.perf_counter()
            self.seconds.append(end - self.t0)

    timer = EpochTimer()
    t_start = time.perf_counter()
    hist = model.fit(x_in, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                     validation_data=(xt_in, yt), validation_batch_size=args.eval_batch_size,
                     callbacks=[timer], verbose=0)
    wall = time.perf_counter() - t_start

    n = len(x_in)
    epochs = []
    for i, sec in enumerate(timer.seconds):
        epochs.append({
            "epoch": i + 1,
            "train_loss": float(hist.history["loss"][i]),
            "val_loss": float(hist.history["val_loss"][i]),
            "seconds": sec,
            "samples_per_s": n / sec,
        })
    result = {
        "framework": "keras",
        "model": args.model,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "n_train": n,
        "n_test": len(xt_in),
        "n_params": int(model.count_params()),
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "history": epochs,
        "wall_seconds": wall,
        "env": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "keras_backend": keras.backend.backend(),
            "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
