"""Data-parallel training with PyTorch's own engine (``torch.distributed``, DDP).

Every aekit command runs unchanged under ``torchrun``::

    torchrun --standalone --nproc_per_node 2 -m aekit train --dataset mnist --out runs/ddp
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
             --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m aekit train ...   # on each machine

torchrun sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_from_env` joins the process
group (gloo on CPU, NCCL on GPUs). From there:

- every process runs the same command on the same data; the :class:`~aekit.training.Trainer`
  splits each global batch of ``batch_size`` samples into one shard per process (process ``r``
  takes rows ``r, r + W, r + 2W, ...`` of the batch), so a step sees the same samples and, up to
  floating-point order, the same averaged gradient whatever the number of processes. That is
  what lets ``--resume`` continue a run on another number of processes;
- only rank 0 writes: :func:`aekit._utils.atomic_path` and :func:`aekit.io.staged_dir` turn
  into scratch writes that are thrown away on the other ranks, so checkpoints, metrics, models
  and figures are written once; only rank 0 prints progress;
- when a process dies, torchrun stops the others; they print one line saying so (instead of a
  traceback from inside gloo) and the run resumes from its last checkpoint with ``--resume``.
  Several machines need the run folder on a shared file system for ``--resume``.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys

import torch
import torch.distributed as dist

from ..errors import AekitError

#: seconds a collective waits for a missing peer before failing (torchrun usually stops us first)
TIMEOUT_S = int(os.environ.get("AEKIT_DIST_TIMEOUT", "300"))


class DistributedError(AekitError):
    """A distributed run cannot go on: a peer died, or the processes disagree."""


def env_world_size() -> int:
    """The world size torchrun announced in the environment (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_initialized() else 0


def local_world_size() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size()))) if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in every non-distributed process): the one that writes and prints."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group torchrun described in the environment; False when not under torchrun.

    ``backend``: ``None`` picks NCCL when this process sees a CUDA GPU, else gloo. Idempotent.
    """
    if env_world_size() <= 1 or not dist.is_available():
        return False
    if is_initialized():
        return True
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {', '.join(missing)} is not; "
            "start distributed runs with torchrun (torchrun --standalone --nproc_per_node N -m aekit ...)"
        )
    use_cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda and backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    _install_stop_handler()
    return True


def shutdown() -> None:
    """Leave the process group (end of a command)."""
    if is_initialized():
        dist.destroy_process_group()


def _install_stop_handler() -> None:
    """torchrun stops the surviving workers with SIGTERM when one dies: say so in one line."""

    def on_term(signum, frame):  # pragma: no cover - exercised through torchrun in tests
        print(
            f"aekit: rank {rank()} stopping: the distributed run was stopped (another process failed or "
            "was killed); the last finished epoch is kept in the run folder's checkpoint, continue with --resume",
            file=sys.stderr,
            flush=True,
        )
        os._exit(143)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        pass


def peer_failure(err: BaseException) -> DistributedError:
    """A clear error for a collective that failed because a peer went away."""
    first = (str(err).splitlines() or [""])[0].split(". ")[0][:200]
    return DistributedError(
        "a collective operation failed, most likely because another process of the "
        f"distributed run died ({type(err).__name__}: {first}); "
        "the last finished epoch is kept in the run folder's checkpoint, continue with --resume"
    )


def all_reduce_sum(values: list[float], device: torch.device | None = None) -> list[float]:
    """Sum a list of floats over all processes (float64); the list itself when not distributed."""
    if not is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device or "cpu")
    try:
        dist.all_reduce(t)
    except RuntimeError as err:
        raise peer_failure(err) from err
    return t.tolist()


def broadcast_object(obj):
    """``obj`` from rank 0 on every process (torch's own object broadcast; never from a file)."""
    if not is_initialized():
        return obj
    box = [obj if is_main() else None]
    try:
        dist.broadcast_object_list(box, src=0)
    except RuntimeError as err:
        raise peer_failure(err) from err
    return box[0]


def barrier() -> None:
    if is_initialized():
        try:
            dist.barrier()
        except RuntimeError as err:
            raise peer_failure(err) from err


def default_threads() -> int:
    """Torch threads per process: the machine's cores shared among the processes on it."""
    return max(1, (os.cpu_count() or 1) // max(1, local_world_size()))
