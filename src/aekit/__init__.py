"""aekit: autoencoders made practical.

Train the tutorial's autoencoders (and your own) on images or tables, look at what they learnt,
and use them to compress, embed, denoise, reconstruct and find anomalies. Models are PyTorch modules built by
name; tasks follow scikit-learn conventions; everything saves as safetensors + JSON.
"""

__version__ = "0.1.0"

import os as _os


def _omp_wait_policy() -> None:
    """Let OpenMP worker threads sleep, not spin, while they wait, when the machine is busy.

    torch's OpenMP threads spin between parallel regions. On a 2-core machine this collapses when
    another process wants the cores: hinton2006 on 2 threads fell from about 7,000 to 184-1,986
    samples/s. Passive waiting gave 3,531-3,656 there, but costs about 30% on an idle machine
    (4,749 against 6,995). So ``AEKIT_OMP_WAIT=auto`` (the default) picks passive waiting only
    when the 1-minute load average is at least half the cores when aekit is imported; ``passive``
    always; ``torch`` never. An ``OMP_WAIT_POLICY`` you set yourself wins. It is read once, when
    torch loads OpenMP, so it applies only when aekit is imported before torch (the CLI always is).
    Measured by benchmarks/scaling.py.
    """
    mode = _os.environ.get("AEKIT_OMP_WAIT", "auto").lower()
    if "OMP_WAIT_POLICY" in _os.environ or mode == "torch":
        return
    busy = False
    if mode == "auto":
        try:
            busy = _os.getloadavg()[0] >= 0.5 * (_os.cpu_count() or 1)
        except OSError:  # pragma: no cover - no load average on this platform
            busy = False
    if mode == "passive" or busy:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


_omp_wait_policy()

from . import errors  # noqa: E402
from ._utils import seed_everything  # noqa: E402
from .io import load, save  # noqa: E402
from .models import create_model, list_models, list_presets  # noqa: E402
from .tasks import Denoiser, Embedder, PretrainedClassifier, pretrain  # noqa: E402
from .tasks.anomaly import AnomalyDetector, SeriesAnomalyDetector  # noqa: E402
from .tasks.retrieval import ImageSearch  # noqa: E402
from .tasks.segmentation import Segmenter  # noqa: E402
from .tasks.text import SentimentRAE, TextAutoencoder  # noqa: E402
from .training import History, TrainConfig, Trainer  # noqa: E402

__all__ = [
    "AnomalyDetector", "ImageSearch", "PretrainedClassifier", "Segmenter", "SentimentRAE", "SeriesAnomalyDetector",
    "TextAutoencoder", "pretrain",
    "Denoiser", "Embedder", "History", "TrainConfig", "Trainer", "__version__", "create_model",
    "errors", "list_models", "list_presets", "load", "save", "seed_everything",
]
