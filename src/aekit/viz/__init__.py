"""Figures: numpy arrays in, PNG files out (Agg canvas, never pyplot)."""

from aekit.viz.figures import image_strip, latent_map, loss_curves, reconstruction_grid

__all__ = ["image_strip", "latent_map", "loss_curves", "reconstruction_grid"]
