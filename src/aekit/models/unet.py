"""U-Net (Ronneberger et al., 2015): an encoder-decoder that labels every pixel.

The contracting path halves the resolution ``depth`` times (two 3x3 convolutions, then a 2x2
max-pool) and the expanding path mirrors it; skip connections concatenate each encoder level's
features to the decoder at the same resolution, which is what lets the network place
boundaries precisely. Preset ``noskip`` removes them (a plain convolutional autoencoder with a
pixel-wise head), to show why they matter.

Differences from the paper, on purpose: "same" padding (the output has the input's size, so
no output-tile bookkeeping), batch norm by default, any input size (mirror-padded up to a
multiple of ``2**depth`` and cropped back), and a Dice term in the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, DataError
from .base import AEOutput
from .registry import register_model

DECODERS = ("transpose", "upsample")


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    input_shape: tuple[int, ...] = (1, 256, 256)  # (C, H, W) of the training crops; any H, W works later
    num_classes: int = 2  # 2: one logit per pixel (sigmoid); more: one logit per class (softmax)
    depth: int = 4  # number of 2x2 max-pools (the paper: 4)
    base_width: int = 32  # channels at full resolution, doubled at every level (the paper: 64)
    batch_norm: bool = True
    dropout: float = 0.0  # dropout at the end of the contracting path (the paper: 0.5)
    decoder: str = "transpose"  # "transpose": 2x2 transposed conv | "upsample": bilinear x2 + 3x3 conv
    skip: bool = True  # False: no skip connections (the ablation)
    class_weights: tuple[float, ...] | None = None  # per-class weights of the cross-entropy (rare classes)
    dice_weight: float = 1.0  # loss = cross-entropy + dice_weight * (1 - mean soft Dice over classes)

    def __post_init__(self) -> None:
        checks = [
            (
                len(self.input_shape) == 3 and all(int(s) >= 1 for s in self.input_shape),
                f"unet needs input_shape (C, H, W) of positive sizes, got {tuple(self.input_shape)}",
            ),
            (self.num_classes >= 2, f"num_classes must be >= 2 (2 = binary), got {self.num_classes}"),
            (1 <= self.depth <= 8, f"depth must be in 1..8, got {self.depth}"),
            (self.base_width >= 1, f"base_width must be >= 1, got {self.base_width}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.decoder in DECODERS, f"decoder must be one of {DECODERS}, got {self.decoder!r}"),
            (
                math.isfinite(self.dice_weight) and self.dice_weight >= 0,
                f"dice_weight must be a finite number >= 0, got {self.dice_weight}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        if self.class_weights is not None:
            w = tuple(self.class_weights)
            if len(w) != self.num_classes or not all(math.isfinite(v) and v > 0 for v in w):
                raise ConfigError(f"class_weights must be {self.num_classes} positive numbers (one per class), got {w}")

    @property
    def output(self) -> str:
        """The output activation: ``sigmoid`` (binary, one logit) or ``softmax``."""
        return "sigmoid" if self.num_classes == 2 else "softmax"


def mirror_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Mirror-pad (B, C, H, W) without repeating the edge pixel; any pad size (reflects repeatedly)."""
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[-2:]
    rows = reflect_index(torch.arange(-top, h + bottom, device=x.device), h)
    cols = reflect_index(torch.arange(-left, w + right, device=x.device), w)
    return x.index_select(-2, rows).index_select(-1, cols)


def reflect_index(i: Tensor, n: int) -> Tensor:
    """Indices ``i`` (possibly outside ``[0, n)``) folded back by mirroring: -1 -> 1, n -> n-2."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def _double_conv(a: int, b: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in in (a, b):
        layers.append(nn.Conv2d(c_in, b, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Up(nn.Module):
    """Double the resolution and halve the channels: 2x2 transposed conv, or bilinear + 3x3 conv."""

    def __init__(self, c_in: int, c_out: int, kind: str) -> None:
        super().__init__()
        if kind == "transpose":
            self.op = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        else:
            self.op = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(c_in, c_out, 3, padding=1),
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


@register_model(
    "unet",
    presets={
        # the paper's widths (64 .. 1024) and dropout; 31M parameters, slow on a CPU
        "ronneberger": dict(base_width=64, depth=4, dropout=0.5, batch_norm=False),
        # a CPU-sized U-Net: 16 .. 256 channels, about 1.9M parameters
        "small": dict(base_width=16, depth=4),
        # the ablation: the same network without skip connections
        "noskip": dict(skip=False),
    },
)
class UNet(nn.Module):
    """U-Net for segmentation: per-pixel class logits; preset noskip drops the skip connections."""

    Config = UNetConfig
    model_name = "unet"
    prefers_channels_last = True

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in config.input_shape)
        c_in = self.input_shape[0]
        widths = [config.base_width * 2**i for i in range(config.depth + 1)]
        self.factor = 2**config.depth
        self.n_out = 1 if config.num_classes == 2 else config.num_classes
        self.down = nn.ModuleList(
            [_double_conv(a, b, config.batch_norm) for a, b in zip([c_in, *widths[:-2]], widths[:-1])]
        )
        self.bottom = _double_conv(widths[-2], widths[-1], config.batch_norm)
        self.drop = nn.Dropout2d(config.dropout) if config.dropout else nn.Identity()
        self.up = nn.ModuleList([_Up(widths[i + 1], widths[i], config.decoder) for i in reversed(range(config.depth))])
        k = 2 if config.skip else 1  # decoder convs see [skip, upsampled] or only the upsampled features
        self.dec = nn.ModuleList(
            [_double_conv(k * widths[i], widths[i], config.batch_norm) for i in reversed(range(config.depth))]
        )
        self.head = nn.Conv2d(widths[0], self.n_out, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # He init, as in the paper
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = torch.tensor(config.class_weights or [1.0] * config.num_classes, dtype=torch.float32)
        self.register_buffer("class_weights", w, persistent=False)

    # -- shapes ------------------------------------------------------------------------------
    def _pad(self, x: Tensor) -> tuple[Tensor, int, int]:
        h, w = x.shape[-2:]
        ph, pw = -h % self.factor, -w % self.factor
        return mirror_pad(x, 0, ph, 0, pw), h, w

    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of the bottleneck feature map for an input of ``input_shape``."""
        _, h, w = self.input_shape
        return (self.config.base_width * self.factor, math.ceil(h / self.factor), math.ceil(w / self.factor))

    @property
    def code_dim(self) -> int:
        return math.prod(self.code_shape)

    # -- forward -----------------------------------------------------------------------------
    def _encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if x.ndim != 4 or x.shape[1] != self.input_shape[0]:
            raise DataError(f"unet expects images of shape (B, {self.input_shape[0]}, H, W), got {tuple(x.shape)}")
        skips = []
        for block in self.down:
            x = block(x)  # (B, c_i, h, w)
            skips.append(x)
            x = F.max_pool2d(x, 2)  # -> (B, c_i, h/2, w/2)
        return self.drop(self.bottom(x)), skips  # (B, base * 2^depth, H / 2^depth, W / 2^depth)

    def _decode(self, z: Tensor, skips: list[Tensor] | None) -> Tensor:
        x = z
        for i, (up, block) in enumerate(zip(self.up, self.dec)):
            x = up(x)  # (B, 2c, h, w) -> (B, c, 2h, 2w)
            if skips is not None:
                x = torch.cat([skips[-1 - i], x], 1)  # -> (B, 2c, 2h, 2w)
            x = block(x)
        return self.head(x)  # (B, n_out, H, W) logits

    def encode(self, x: Tensor) -> Tensor:
        """The bottleneck features (deterministic): (B, C, H, W) -> (B, base * 2^depth, H/2^d, W/2^d)."""
        x, _, _ = self._pad(x)
        return self._encode(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Logits from a bottleneck alone; only the no-skip ablation can do this."""
        if self.config.skip:
            raise ConfigError("a U-Net's decoder needs the encoder's skip features: call model(x) instead")
        return self._decode(z, None)

    def forward(self, x: Tensor) -> AEOutput:
        """(B, C, H, W) -> logits (B, 1 or num_classes, H, W) and the bottleneck ``z``."""
        xp, h, w = self._pad(x)
        z, skips = self._encode(xp)
        logits = self._decode(z, skips if self.config.skip else None)
        return AEOutput(logits=logits[..., :h, :w], z=z)

    def activate(self, logits: Tensor) -> Tensor:
        """Logits -> probabilities (sigmoid for one channel, softmax over classes otherwise)."""
        return torch.sigmoid(logits) if self.n_out == 1 else torch.softmax(logits, 1)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities (B, num_classes, H, W); channel 1 is the positive class when binary."""
        p = self.activate(self(x).logits.float())
        return torch.cat([1 - p, p], 1) if self.n_out == 1 else p

    def reconstruct(self, x: Tensor) -> Tensor:
        """The model's output in [0, 1] (the aekit contract): the probability map."""
        return self.activate(self(x).logits)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Loss terms for ``(images, masks)``: ``recon`` (the pixel-wise cross-entropy), ``dice``
        (1 - soft Dice, averaged over classes) and ``loss`` = recon + dice_weight * dice.

        Masks: integer class maps (B, H, W) or (B, 1, H, W), or float (B, 1, H, W) in [0, 1]
        (binary models; soft targets allowed).
        """
        x, target = batch
        logits = self(x).logits.float()
        recon, dice = segmentation_loss(logits, target, self.class_weights, self.config.num_classes)
        terms = {"recon": recon, "dice": dice}
        terms["loss"] = recon + self.config.dice_weight * dice if self.config.dice_weight else recon
        return terms


def _one_hot_target(logits: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Targets as per-class maps shaped like the class probabilities (B, K, H, W), float."""
    if target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    if target.shape[1] != 1 or target.shape[2:] != logits.shape[2:] or len(target) != len(logits):
        raise DataError(f"masks of shape {tuple(target.shape)} do not match outputs {tuple(logits.shape)}")
    if torch.is_floating_point(target):
        if num_classes != 2:
            raise DataError("multi-class masks must be integer class maps, not floats")
        t = target.float()
        return torch.cat([1 - t, t], 1)
    return F.one_hot(target[:, 0].long(), num_classes).permute(0, 3, 1, 2).float()


def segmentation_loss(
    logits: Tensor, target: Tensor, class_weights: Tensor | None, num_classes: int, eps: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Weighted pixel-wise cross-entropy and soft Dice loss (1 - mean Dice over classes).

    ``logits`` (B, 1, H, W) for binary (sigmoid) or (B, K, H, W) (softmax); ``target`` as in
    :meth:`UNet.loss`. Each pixel's cross-entropy is weighted by its class's weight; the Dice of
    each class is computed over the whole batch with smoothing ``eps`` (pixels), so a class
    absent from a batch and predicted absent scores 1.
    """
    t = _one_hot_target(logits, target, num_classes)  # (B, K, H, W)
    w = class_weights if class_weights is not None else torch.ones(num_classes, device=logits.device)
    pix_w = (t * w.view(1, -1, 1, 1).to(t)).sum(1)  # (B, H, W): each pixel's class weight
    if logits.shape[1] == 1:
        ce = F.binary_cross_entropy_with_logits(logits[:, 0], t[:, 1], reduction="none")
        p1 = torch.sigmoid(logits)
        p = torch.cat([1 - p1, p1], 1)
    else:
        logp = F.log_softmax(logits, 1)
        ce = -(t * logp).sum(1)
        p = logp.exp()
    ce = (ce * pix_w).sum() / pix_w.sum().clamp_min(1e-12)
    inter = (p * t).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    dice = (2 * inter + eps) / (denom + eps)  # (K,)
    return ce, 1 - dice.mean()
