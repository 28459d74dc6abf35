"""Distributed data-parallel training: ``torchrun --nproc_per_node 2 -m aekit ...`` on 127.0.0.1
(gloo), checked against one process; sharding, rank-0-only writes and a killed worker."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.errors import DataError
from aekit.training import TrainConfig, Trainer
from aekit.training import distributed as ddp
from aekit.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", AEKIT_DIST_TIMEOUT="60")
    return env


def torchrun(n: int, *args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [*TORCHRUN, "--nproc_per_node", str(n), "-m", "aekit", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def aekit(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "aekit", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


TRAIN = ["train", "--dataset", "digits", "--threads", "1", "--batch-size", "64"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-process and two-process runs of the same command, and a two-process run resumed on one."""
    d = tmp_path_factory.mktemp("ddp")
    from aekit.cli.main import main as cli_main

    assert cli_main([*TRAIN, "--epochs", "3", "--out", str(d / "one")]) == 0
    double = torchrun(2, *TRAIN, "--epochs", "3", "--out", "two", cwd=d)
    assert double.returncode == 0, double.stdout + double.stderr
    first = torchrun(2, *TRAIN, "--epochs", "2", "--out", "moved", cwd=d)
    assert first.returncode == 0, first.stdout + first.stderr
    assert cli_main(["train", "--resume", str(d / "moved"), "--epochs", "3", "--threads", "1"]) == 0
    return d, double


def test_two_processes_match_one(runs):
    d, _ = runs
    one, two = history(d / "one"), history(d / "two")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        # the same global batches; only the order of floating-point sums differs
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=2e-3)
        assert b["train_samples"] == a["train_samples"]
    m1 = json.loads((d / "one" / "metrics.json").read_text())
    m2 = json.loads((d / "two" / "metrics.json").read_text())
    assert m2["test_sq_err_per_image"] == pytest.approx(m1["test_sq_err_per_image"], rel=5e-3)


def test_rank_zero_writes_once_and_prints_once(runs):
    d, double = runs
    files = sorted(p.name for p in (d / "two").iterdir())
    assert {"aekit.json", "model.safetensors", "metrics.json", "history.csv", "loss.png"} <= set(files)
    assert not [f for f in files if f.endswith(".tmp") or f.startswith(".")], files
    assert double.stdout.count("epoch   3/3") == 1, double.stdout  # one progress report, from rank 0
    assert "run folder" in double.stdout


def test_resume_on_another_number_of_processes(runs):
    d, _ = runs
    one, moved = history(d / "one"), history(d / "moved")
    assert len(moved) == 3
    assert moved[-1]["train_loss"] == pytest.approx(one[-1]["train_loss"], rel=2e-3)
    assert moved[-1]["val_loss"] == pytest.approx(one[-1]["val_loss"], rel=2e-3)


def test_detect_fit_runs_under_torchrun(tmp_path):
    t = np.arange(600)
    rng = np.random.default_rng(0)
    rows = np.c_[t, np.sin(2 * np.pi * t / 40) + 0.05 * rng.normal(size=600), np.cos(2 * np.pi * t / 40)]
    np.savetxt(tmp_path / "s.csv", rows, delimiter=",", header="t,a,b", comments="")
    res = torchrun(2, "detect", "fit", "--data", "s.csv", "--out", "det", "--steps", "60", "--window", "24",
                   "--threads", "1", "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "det" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "det" / "aekit.json").read_text())["kind"]
    assert res.stdout.count("run folder") == 1


def test_killed_worker_stops_the_others_and_the_run_resumes(tmp_path):
    cmd = [*TORCHRUN, "--nproc_per_node", "2", "-m", "aekit", *TRAIN, "--epochs", "2000", "--out", "run"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    ckpt = tmp_path / "run" / "checkpoint.safetensors"
    deadline = time.time() + 90
    try:
        while time.time() < deadline:  # wait until a few epochs are checkpointed
            try:
                if ckpt.is_file() and load_checkpoint(ckpt)[1]["epoch"] >= 2:
                    break
            except Exception:  # being replaced at this very moment
                pass
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint after 90 s")
        workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "aekit"], capture_output=True, text=True)
        pids = [int(p) for p in workers.stdout.split()]
        assert len(pids) == 2, workers.stdout
        os.kill(max(pids), signal.SIGKILL)  # the second worker dies
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "another process" in out and "--resume" in out, out[-3000:]
    done = load_checkpoint(ckpt)[1]["epoch"]
    assert 2 <= done < 2000
    res = aekit("train", "--resume", "run", "--epochs", str(done + 1), "--threads", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(history(tmp_path / "run")) == done + 1


# -- in-process: sharding and the write guard --------------------------------------------------------
def _sharded(monkeypatch, rank: int, world: int, n: int, bs: int) -> list[list[int]]:
    tr = Trainer(TrainConfig(batch_size=bs))
    tr.rank, tr.world, tr.gen = rank, world, torch.Generator().manual_seed(0)
    return [idx.tolist() for _, _, idx in tr._index_batches(n)]


def test_shards_partition_each_global_batch(monkeypatch):
    one = _sharded(monkeypatch, 0, 1, 103, 16)
    shards = [_sharded(monkeypatch, r, 3, 103, 16) for r in range(3)]
    # 103 = 6 * 16 + 7: seven batches, and the last one (7 >= 3 samples) is kept
    assert len(one) == 7 and all(len(s) == 7 for s in shards)
    for step in range(7):
        union = sorted(i for s in shards for i in s[step])
        assert union == sorted(one[step])
        assert max(len(s[step]) for s in shards) - min(len(s[step]) for s in shards) <= 1


def test_a_last_batch_smaller_than_the_world_is_skipped(monkeypatch):
    shards = [_sharded(monkeypatch, r, 4, 66, 16) for r in range(4)]  # 66 = 4 * 16 + 2
    assert all(len(s) == 4 for s in shards)
    with pytest.raises(DataError, match="cannot be shared among 4 processes"):
        _sharded(monkeypatch, 0, 4, 3, 16)


def test_workers_write_nothing(tmp_path, monkeypatch):
    import aekit._utils as utils
    from aekit.io.persistence import staged_dir

    monkeypatch.setattr(utils, "is_worker_process", lambda: True)
    monkeypatch.setattr("aekit.io.persistence.is_worker_process", lambda: True)
    utils.write_json(tmp_path / "a.json", {"x": 1})
    with staged_dir(tmp_path / "run") as tmp:
        (tmp / "f.txt").write_text("scratch")
    assert list(tmp_path.iterdir()) == []


def test_not_distributed_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ddp.init_from_env() is False
    assert ddp.world_size() == 1 and ddp.is_main()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ddp.DistributedError, match="torchrun"):
        ddp.init_from_env()


def test_streamed_npy_under_torchrun(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (400, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    res = torchrun(2, "train", "--dataset", "x.npy", "--stream", "--epochs", "2", "--threads", "1",
                   "--out", "run", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["streamed"] is True and m["processes"] == 2
    # every training row once: 400 minus 40 test and 40 validation rows
    assert history(tmp_path / "run")[-1]["train_samples"] == 400 - 40 - 40
