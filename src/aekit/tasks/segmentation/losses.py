"""Segmentation losses. They live with the model (``aekit.models.unet``: a model owns its
objective); this module re-exports them for users of the task."""

from ...models.unet import segmentation_loss

__all__ = ["segmentation_loss"]
