"""Progress reporting: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys
import time

#: held-out scores shown beside val_loss when an epoch record has them (what a person watches)
HEADLINE = ("val_exact_match", "val_accuracy")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.3e}"


def _headline(rec: dict) -> str:
    """'  val_exact_match 0.9120' for each headline score in the record."""
    return "".join(f"  {k} {_fmt(rec[k])}" for k in HEADLINE if isinstance(rec.get(k), (int, float)))


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def batch(self, *args) -> None:
        return None

    def epoch_done(self, rec: dict, epochs: int) -> None:
        return None


class _Lines(_Silent):
    """One line per epoch (logs, CI, pipes)."""

    def epoch_done(self, rec: dict, epochs: int) -> None:
        val = rec.get("val_loss")
        print(
            f"epoch {rec['epoch']:>3}/{epochs}  loss {_fmt(rec['train_loss'])}  val_loss {_fmt(val)}"
            f"{_headline(rec)}  {rec['samples_per_s']:,.0f} samples/s  {rec['seconds']:.1f}s",
            flush=True,
        )


class _Bar(_Silent):
    """A rich progress bar: epoch, batch, loss, val loss, samples/s."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[sps]} samples/s"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.task = None
        self.val = "-"
        self._last = 0.0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def batch(self, epoch, epochs, step, n_steps, loss, sps) -> None:
        now = time.perf_counter()
        if self.task is None or step == 1:
            self.task = self.progress.add_task(
                "train", total=n_steps, epoch=f"{epoch}/{epochs}", loss="-", val=self.val, sps="-"
            )
        if step == n_steps or now - self._last > 0.1:  # rich redraws at 10 Hz anyway
            self._last = now
            self.progress.update(
                self.task, completed=step, loss=_fmt(loss), sps=f"{sps:,.0f}", val=self.val
            )

    def epoch_done(self, rec: dict, epochs: int) -> None:
        self.val = _fmt(rec.get("val_loss")) + _headline(rec)
        if self.task is not None:
            self.progress.update(self.task, val=self.val)


def make_progress(progress: bool | None):
    """``None``: a bar when stdout is a terminal, plain lines otherwise; ``False``: silent."""
    if progress is False:
        return _Silent()
    if progress is None and not sys.stdout.isatty():
        return _Lines()
    return _Bar()
