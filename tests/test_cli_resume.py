"""A run killed at any moment leaves a loadable checkpoint, and ``aekit train --resume`` finishes it.

``python -m aekit train`` runs as a real subprocess (one thread); the test polls its checkpoint
and SIGKILLs it at a chosen moment: mid-epoch, right after the start (only the epoch-0
checkpoint exists), or after the last epoch while the final files are being written. The resume
then runs in-process through ``aekit.cli.main.main``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from threadpoolctl import threadpool_limits

import aekit
from aekit.cli.main import main
from aekit.errors import ModelFileError
from aekit.io import read_meta
from aekit.training import load_checkpoint

# conv_ae "wide" on 800 digits (720 train, 80 validation): ~0.1-0.4 s per epoch on one thread
RUN_ARGS = [
    "--model", "conv_ae", "--preset", "wide", "--dataset", "digits", "--n-train", "800",
    "--threads", "1", "--seed", "0", "--quiet",
]
REAL_FILES = {
    "aekit.json", "checkpoint.safetensors", "model.safetensors", "metrics.json", "history.csv",
    "reconstructions.png", "loss.png", "latent.png",
}
# the atomic writers' temporary names: ".NAME.<random>.tmp" beside NAME
TEMP_NAME = re.compile(r"^\.(?P<name>[^/]+?)\.[^./]+\.tmp$")
pytestmark = pytest.mark.filterwarnings("ignore:conv_ae. the code:UserWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):  # PCA in the final metrics/figures: no BLAS oversubscription
        yield


# -- helpers ----------------------------------------------------------------------------------
def start_training(run: Path, epochs: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        AEKIT_DATA_HOME=os.environ.get("AEKIT_DATA_HOME", ""), AEKIT_OFFLINE="1", OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore",
    )
    cmd = [sys.executable, "-m", "aekit", "train", *RUN_ARGS, "--epochs", str(epochs), "--out", str(run)]
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)


def wait_for_checkpoint(proc: subprocess.Popen, run: Path, log: Path, done, timeout: float = 90.0) -> dict:
    """Poll RUN/checkpoint.safetensors (re-read when its inode changes) until ``done(meta)``."""
    ckpt = run / "checkpoint.safetensors"
    seen = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ino = os.stat(ckpt).st_ino
        except FileNotFoundError:
            ino = None
        if ino is not None and ino != seen:
            seen = ino
            try:
                meta = load_checkpoint(ckpt)[1]
            except ModelFileError:  # replaced between stat and read: read the next one
                meta = None
            if meta is not None and done(meta):
                return meta
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc {proc.returncode}) before the kill:\n{log.read_text()}")
        time.sleep(0.003)
    proc.kill()
    proc.wait()
    pytest.fail(f"no checkpoint matched within {timeout} s:\n{log.read_text()}")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL  # it was still running


def history_rows(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_killed_run(run: Path, digits) -> dict:
    """What a kill leaves: real files intact, temp files only under the writers' temp names, the
    checkpoint readable, and ``aekit.load`` falling back to it. Returns the checkpoint meta."""
    names = {p.name for p in run.iterdir()}
    real = {n for n in names if not n.startswith(".")}
    assert {"aekit.json", "checkpoint.safetensors"} <= real <= REAL_FILES, sorted(names)
    for temp in names - real:
        m = TEMP_NAME.match(temp)
        assert m and m.group("name") in REAL_FILES, f"unexpected leftover {temp!r}"
    doc = read_meta(run)
    assert doc["kind"] == "model" and doc["run"]["spec"]["model"] == "conv_ae"
    tensors, meta = load_checkpoint(run / "checkpoint.safetensors")
    assert [r["epoch"] for r in meta["history"]] == list(range(1, meta["epoch"] + 1))
    if "model.safetensors" in real:  # killed after the final weights were written
        model = aekit.load(run)
    else:
        with pytest.warns(UserWarning, match=rf"loaded its last checkpoint \(epoch {meta['epoch']}\)"):
            model = aekit.load(run)
        for key, value in model.state_dict().items():
            assert torch.equal(value, tensors[f"model.{key}"]), key
    with torch.no_grad():
        rec = model.reconstruct(torch.from_numpy(digits.x_test[:16]))
    assert rec.shape == (16, 1, 8, 8) and torch.isfinite(rec).all()
    return meta


def resume_and_check(run: Path, epochs: int, before: dict) -> None:
    code = main(["train", "--resume", str(run), "--quiet"])
    assert code == 0
    rows = history_rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))  # continuous, no repeats
    for old, new in zip(before["history"], rows):  # the epochs before the kill are kept as they were
        assert float(new["train_loss"]) == pytest.approx(old["train_loss"], rel=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == epochs
    for key in ("test_bce_per_pixel", "test_sq_err_per_image", "pca_sq_err_per_image", "seconds"):
        assert np.isfinite(metrics[key]), key
    doc = read_meta(run)
    assert doc["weights"]["sha256"] == sha256(run / "model.safetensors")
    assert load_checkpoint(run / "checkpoint.safetensors")[1]["epoch"] == epochs
    for name in ("reconstructions.png", "loss.png"):
        assert (run / name).is_file()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aekit.load(run)
    assert not [w for w in caught if "checkpoint" in str(w.message)]  # its weights, not the checkpoint


# -- tests --------------------------------------------------------------------------------------
def test_killed_mid_epoch_then_resumed(tmp_path, digits):
    run, log = tmp_path / "run", tmp_path / "train.log"
    proc = start_training(run, 40, log)
    try:
        meta = wait_for_checkpoint(proc, run, log, lambda m: m["epoch"] >= 2)
        epoch_s = meta["history"][-1]["seconds"]
        time.sleep(0.4 * epoch_s)  # into the next epoch, well before its end
    finally:
        if proc.poll() is None:
            kill(proc)
    before = check_killed_run(run, digits)
    assert 2 <= before["epoch"] < 40
    assert not (run / "model.safetensors").exists() and not (run / "metrics.json").exists()
    resume_and_check(run, 40, before)


def test_killed_before_the_first_epoch_ends_then_resumed(tmp_path, digits):
    run, log = tmp_path / "run", tmp_path / "train.log"
    proc = start_training(run, 4, log)
    try:
        wait_for_checkpoint(proc, run, log, lambda m: True)  # the epoch-0 checkpoint, written at the start
    finally:
        if proc.poll() is None:
            kill(proc)
    before = check_killed_run(run, digits)
    assert before["epoch"] == 0 and before["history"] == []
    resume_and_check(run, 4, before)
    # the checkpoint holds the RNG states: resuming gives exactly the uninterrupted run
    straight = tmp_path / "straight"
    assert main(["train", *RUN_ARGS, "--epochs", "4", "--out", str(straight)]) == 0
    a, b = load_file(str(run / "model.safetensors")), load_file(str(straight / "model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_killed_after_the_last_epoch_then_resumed(tmp_path, digits):
    """Killed while the final weights, metrics and figures are written: resume only finishes them."""
    run, log = tmp_path / "run", tmp_path / "train.log"
    proc = start_training(run, 3, log)
    try:
        wait_for_checkpoint(proc, run, log, lambda m: m["epoch"] == 3)
    finally:
        if proc.poll() is None:
            kill(proc)
    before = check_killed_run(run, digits)
    assert before["epoch"] == 3
    last = load_checkpoint(run / "checkpoint.safetensors")[0]
    resume_and_check(run, 3, before)
    final = load_file(str(run / "model.safetensors"))
    for key, value in final.items():
        assert torch.equal(value, last[key]), key  # no extra training on resume


def test_killed_before_any_checkpoint(tmp_path, capsys):
    """The instant between the pending aekit.json and the epoch-0 checkpoint: a clear refusal."""
    run = tmp_path / "run"
    assert main(["train", *RUN_ARGS, "--epochs", "1", "--n-train", "100", "--out", str(run)]) == 0
    for p in run.iterdir():
        if p.name != "aekit.json":
            p.unlink()
    doc = json.loads((run / "aekit.json").read_text())
    doc["weights"]["sha256"] = None  # as the pending aekit.json written before training
    (run / "aekit.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert "no checkpoint.safetensors" in out and "Traceback" not in out
    with pytest.raises(ModelFileError, match="no model.safetensors"):
        aekit.load(run)
    assert sorted(p.name for p in run.iterdir()) == ["aekit.json"]
