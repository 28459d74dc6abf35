"""Anomaly detection by reconstruction error: detectors, thresholds, series tools, evaluation.

``AnomalyDetector`` scores rows, vectors and images; ``SeriesAnomalyDetector`` scores every time
step of one or many sensor channels and groups alarms into events (``stream()`` does it live).
Thresholds come from a false-alarm budget on normal data (``"fpr:0.001"``), a known
contamination, or labelled anomalies (``"f1"``); see :mod:`.thresholds`.
"""

from .detector import AnomalyDetector
from .evaluation import Event, average_precision, best_f1, binary_report, find_events, nab_score, roc_auc, window_report
from .long_series import LongSeries
from .series import SeriesAnomalyDetector, SeriesResult, SeriesStream, StreamUpdate
from .thresholds import Threshold, fit_threshold

__all__ = [
    "AnomalyDetector",
    "Event",
    "LongSeries",
    "SeriesAnomalyDetector",
    "SeriesResult",
    "SeriesStream",
    "StreamUpdate",
    "Threshold",
    "average_precision",
    "best_f1",
    "binary_report",
    "find_events",
    "fit_threshold",
    "nab_score",
    "roc_auc",
    "window_report",
]
