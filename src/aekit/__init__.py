"""aekit: autoencoders made practical.

Train the tutorial's autoencoders (and your own) on images or tables, look at what they learnt,
and use them to compress, embed, denoise, reconstruct and find anomalies. Models are PyTorch modules built by
name; tasks follow scikit-learn conventions; everything saves as safetensors + JSON.
"""

__version__ = "0.1.0"

import os as _os

# OpenMP worker threads that sleep, not spin, while they wait for work. torch's default (spinning)
# collapses when another process wants the same cores: measured on this 2-core machine under load,
# hinton2006 on 2 threads went from 184 to 3,531 samples/s. Read once when torch loads OpenMP, so
# it only takes effect when aekit is imported before torch (the CLI always is); set the variable
# yourself to choose otherwise. See benchmarks/scaling.py for the idle-machine comparison.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
