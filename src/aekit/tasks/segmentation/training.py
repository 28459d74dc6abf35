"""Training a segmentation net with the aekit Trainer: random augmented crops, whole-image validation.

:class:`SegmentationTrainer` keeps everything of :class:`~aekit.training.Trainer` (optimizer,
precision, checkpoints and exact resume, NaN stop, early stopping, progress) and changes only
where batches come from: each step draws ``batch_size`` random crops with the Trainer's own
generator (saved in checkpoints) and augments them; validation runs on whole images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ...errors import DataError
from ...training import Trainer
from .augment import Augment, augment_batch, pad_to_at_least, random_crops


class CropSampler(torch.utils.data.Dataset):
    """Training pairs drawn as random ``crop`` x ``crop`` windows, ``samples_per_epoch`` per epoch.

    Indexing gives the top-left crop of an image (only the Trainer's shape checks use it);
    :meth:`draw` is what training uses.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        crop: int,
        samples_per_epoch: int,
        augment: Augment,
    ) -> None:
        pairs = [pad_to_at_least(torch.from_numpy(x), torch.from_numpy(y), crop) for x, y in zip(images, masks)]
        self.images: list[Tensor] = [p[0].contiguous() for p in pairs]
        self.masks: list[Tensor] = [p[1].contiguous() for p in pairs]
        self.crop = int(crop)
        self.samples_per_epoch = int(samples_per_epoch)
        self.augment = augment

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = i % len(self.images)
        return self.images[j][:, : self.crop, : self.crop], self.masks[j][: self.crop, : self.crop]

    def draw(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = random_crops(self.images, self.masks, n, self.crop, gen)
        return augment_batch(x, y, self.augment, gen)


class WholeImages(torch.utils.data.Dataset):
    """Validation pairs: whole images (C, H, W) and masks (H, W), one at a time."""

    def __init__(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
        self.images = [torch.from_numpy(np.ascontiguousarray(x)) for x in images]
        self.masks = [torch.from_numpy(np.ascontiguousarray(y)) for y in masks]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i], self.masks[i]


class SegmentationTrainer(Trainer):
    """The aekit Trainer fed with :class:`CropSampler` batches and :class:`WholeImages` validation."""

    def _batches(self, data, fixed_inputs):
        if not isinstance(data, CropSampler):
            yield from super()._batches(data, fixed_inputs)
            return
        bs = self.config.batch_size
        n_steps = math.ceil(len(data) / bs)
        for step in range(n_steps):
            n = min(bs, len(data) - step * bs)
            if self.world > 1:  # this process's share of the global batch, drawn from its own generator
                n = len(range(self.rank, n, self.world))
                if n == 0:
                    n = 1
            xb, yb = data.draw(n, self.local_gen)
            yield step, n_steps, (self._to_device(xb), yb.to(self.device))

    def _check_shapes(self, model, data, name) -> None:
        if data is None:
            return
        want = model.input_shape[0]
        got = int(data[0][0].shape[0])
        if got != want:
            raise DataError(f"{name} has {got}-channel images but the model expects {want} channel(s)")

    @torch.inference_mode()
    def evaluate(self, model, data, *, noise_seed: int = 0) -> dict[str, float]:
        """Mean loss terms over whole images (each weighted by its pixel count)."""
        if not isinstance(data, WholeImages):
            return super().evaluate(model, data, noise_seed=noise_seed)
        self.device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = 0
        for x, y in data:
            with self._autocast():
                terms = model.loss((self._to_device(x[None]), y[None].to(self.device)))
            px = y.numel()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * px
            n += px
        model.train(was_training)
        return {k: v / n for k, v in sums.items()}
