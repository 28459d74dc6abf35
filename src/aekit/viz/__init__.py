"""Figures: numpy arrays in, PNG files out (Agg canvas, never pyplot)."""

from aekit.viz.anomaly import explanation_figure, score_histogram, series_figure
from aekit.viz.figures import image_strip, latent_map, loss_curves, reconstruction_grid

__all__ = [
    "explanation_figure",
    "image_strip",
    "latent_map",
    "loss_curves",
    "reconstruction_grid",
    "score_histogram",
    "series_figure",
]
