"""Video to text: a per-frame CNN, an LSTM over the frames and an attentive LSTM decoder (S2VT).

Clips are float tensors (B, T, H, W) in [0, 1] (grey frames); captions are right-padded token ids
(B, L) of ``aekit.text`` (0 padding, 1 unknown, 2 begin, 3 end of sentence). Like the text models
these are not drop-in image autoencoders (``input_kind = "video"``): the generic model tests skip
them and ``tests/test_captioning.py`` holds their forward/backward checks.

The frame encoder is cheap on CPU by default (``cnn="strided"``: stride-2 convolutions down to a
small map); ``cnn="pooled"`` lays it out as ``conv_ae``'s encoder (same-padded conv + 2x2
max-pool per width), so a trained ``conv_ae`` can initialise it (:meth:`init_frame_encoder`).
``temporal=False`` is the frame-bag baseline: the CNN sees the mean frame, with no model of time.
``spatial_attention=True`` (preset ``spatial``) adds attention over positions within each frame,
for clips in which several objects move at once (see the config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..text.vocab import BOS, EOS, PAD, SPECIALS
from . import decoding
from .registry import register_model

CNNS = ("strided", "pooled")


class _Memory(NamedTuple):
    """What the decoder attends over."""

    frames: Tensor  # (B, T', hidden): one vector per frame
    keys: Tensor | None = None  # (B, T, P, hidden): spatial keys, one per position of each frame's map
    values: Tensor | None = None  # (B, T, P, spatial_dim)
    grid: Tensor | None = None  # (P, 2): x and y in [-1, 1] of each position

    def repeat(self, k: int) -> _Memory:
        """Each clip's memory ``k`` times in a row (for beam search)."""
        rep = [None if m is None else m.repeat_interleave(k, 0) for m in self[:3]]
        return _Memory(*rep, self.grid)


@dataclass(frozen=True, kw_only=True)
class VideoCaptionerConfig:
    input_shape: tuple[int, ...] = (20, 64, 64)  # (T, H, W): frames per clip (any T is read) and frame size
    vocab_size: int = 64  # set from the vocabulary by VideoCaptioner
    max_len: int = 24  # the longest caption decoded, in tokens (plus <eos>)
    cnn: str = "strided"  # "strided" (3x3 stride-2 convs) | "pooled" (conv_ae's layout: conv + 2x2 max-pool)
    channels: tuple[int, ...] = (8, 16, 32, 32)  # conv widths, each halving the frame (64x64 -> 4x4)
    kernel_size: int = 3
    batch_norm: bool = True  # after each conv: without it the CNN barely learns through the LSTMs
    # the frame feature also reads each channel's maximum over the last map: a translation-invariant
    # "what" beside the flattened map's "where" (cheap; no clear gain measured on moving digits)
    global_pool: bool = True
    frame_dim: int = 128  # per-frame feature (a Linear on the flattened last map [+ channel maxima])
    hidden: int = 128  # units of the frame LSTM and of the decoder LSTM
    embed_dim: int = 32  # word vectors
    # the decoder also reads the clip's mean memory at every step (as Show and Tell reads the image):
    # a direct path from the frames to every word besides the attention (short runs: direction and
    # bounce accuracy 0.95 / 0.87 -> 0.99 / 0.98)
    feed_clip: bool = True
    temporal: bool = True  # False: frame bag (the CNN on the mean frame, no LSTM over frames)
    dropout: float = 0.0  # on frame features and decoder outputs while training
    # spatial attention (Show, Attend and Tell across frames): each word also attends over the
    # positions of the last CNN map, frame by frame. What it finds is averaged over the frames
    # ("which digit"), and where it finds it (the attention-weighted position per frame) is read by
    # a small GRU over the frames ("how it moves"). This binds an object to its own motion, which
    # attention over whole frames cannot do when two objects move at once.
    spatial_attention: bool = False
    spatial_dim: int = 64  # channels of the attended map (a 3x3 conv widens the receptive field first)
    motion_hidden: int = 32  # units of the GRU that reads the attended positions over the frames

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"video_captioner needs input_shape (T, H, W), got {shape}")
        if self.vocab_size <= len(SPECIALS):
            raise ConfigError(f"vocab_size must exceed the {len(SPECIALS)} special tokens, got {self.vocab_size}")
        if self.cnn not in CNNS:
            raise ConfigError(f"cnn must be one of {', '.join(map(repr, CNNS))}, got {self.cnn!r}")
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ConfigError(f"channels must be one or more positive widths, got {self.channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if min(self.max_len, self.frame_dim, self.hidden, self.embed_dim) < 1:
            raise ConfigError("max_len, frame_dim, hidden and embed_dim must be >= 1")
        if 2 ** len(self.channels) > min(shape[1:]):
            raise ConfigError(
                f"{len(self.channels)} conv layers halve {shape[1]}x{shape[2]} frames below one pixel; "
                "use fewer channels"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.spatial_attention and min(self.spatial_dim, self.motion_hidden) < 1:
            raise ConfigError("spatial_dim and motion_hidden must be >= 1")


@register_model(
    "video_captioner",
    presets={
        # attention over whole frames only (the config's defaults): cheaper, for one moving thing
        "frames": dict(),
        "small": dict(channels=(8, 16, 32), frame_dim=64, hidden=64, embed_dim=16),
        "wide": dict(channels=(16, 32, 32, 64), frame_dim=192, hidden=192),
        "frame_bag": dict(temporal=False),
        "pooled": dict(cnn="pooled", channels=(16, 8)),  # initialisable from conv_ae:tutorial
        # an 8x8 map attended position by position: for clips with several moving objects
        "spatial": dict(channels=(8, 32, 32), spatial_attention=True),
    },
)
class VideoCaptionNet(nn.Module):
    """Video captioner: CNN per frame -> LSTM over frames -> LSTM decoder with attention."""

    Config = VideoCaptionerConfig
    input_kind = "video"

    def __init__(self, config: VideoCaptionerConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in config.input_shape)
        _, h, w = self.input_shape
        k, pad = config.kernel_size, config.kernel_size // 2
        layers: list[nn.Module] = []
        for a, b in zip([1, *config.channels[:-1]], config.channels):
            norm = [nn.BatchNorm2d(b)] if config.batch_norm else []
            if config.cnn == "strided":
                layers += [nn.Conv2d(a, b, k, stride=2, padding=pad), *norm, nn.ReLU()]
            else:  # conv_ae's encoder block (conv, [norm], act, pool)
                layers += [nn.Conv2d(a, b, k, padding=pad), *norm, nn.ReLU(), nn.MaxPool2d(2)]
        # channels-last convolutions run about twice as fast on CPU (oneDNN) for these thin maps
        self.cnn = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        with torch.no_grad():
            n_flat = self.cnn.eval()(torch.zeros(1, 1, h, w)).numel()  # eval: leaves batch-norm stats alone
        n_flat += config.channels[-1] if config.global_pool else 0
        self.cnn.train()
        d, hd = config.frame_dim, config.hidden
        self.to_feature = nn.Linear(n_flat, d)
        if config.temporal:
            self.frame_rnn = nn.LSTM(d, hd, batch_first=True)
            self.skip = nn.Linear(d, hd, bias=False)  # frame features straight into the memory
        else:
            self.to_memory = nn.Linear(d, hd)
            self.to_state = nn.Linear(d, 2 * hd)
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD)
        self.decoder_rnn = nn.LSTM(config.embed_dim + (hd if config.feed_clip else 0), hd, batch_first=True)
        self.attn = nn.Linear(hd, hd, bias=False)  # Luong's "general" score: h_dec . W m_t
        seen = config.spatial_dim + config.motion_hidden if config.spatial_attention else 0
        self.combine = nn.Linear(2 * hd + seen, hd)  # decoder output, frame context [, what, how]
        self.head = nn.Linear(hd, config.vocab_size)
        self.drop = nn.Dropout(config.dropout)
        if config.spatial_attention:
            c, ds = config.channels[-1], config.spatial_dim
            self.spatial = nn.Sequential(
                nn.Conv2d(c, ds, 3, padding=1), *([nn.BatchNorm2d(ds)] if config.batch_norm else []), nn.ReLU()
            ).to(memory_format=torch.channels_last)
            self.s_key = nn.Linear(ds, hd, bias=False)
            self.s_query = nn.Linear(hd, hd)
            self.motion_rnn = nn.GRU(4, config.motion_hidden, batch_first=True)  # reads (x, y, dx, dy)
        # per-word weights of the cross-entropy (ones: the plain likelihood); VideoCaptioner can
        # up-weight rare words. A buffer, so it is saved with the weights.
        self.register_buffer("word_weight", torch.ones(config.vocab_size))

    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.config.hidden,)

    # -- encoder ----------------------------------------------------------------------------------
    def _maps(self, x: Tensor) -> Tensor:
        """Clips (B, T, H, W) -> last CNN maps (B*T, C, h, w), every frame in one batch (T = 1 for the frame bag)."""
        if not self.config.temporal:
            x = x.mean(1, keepdim=True)  # (B, T, H, W) -> (B, 1, H, W): the mean frame
        b, t, h, w = x.shape
        return self.cnn(x.reshape(b * t, 1, h, w).contiguous(memory_format=torch.channels_last))

    def _features(self, m: Tensor, b: int) -> Tensor:
        """Last maps (B*T, C, h, w) -> frame features (B, T, frame_dim)."""
        f = torch.cat([m.flatten(1), m.amax((2, 3))], 1) if self.config.global_pool else m.flatten(1)
        f = F.relu(self.to_feature(f))  # -> (B*T, frame_dim)
        return self.drop(f.view(b, len(m) // b, -1))

    def frame_features(self, x: Tensor) -> Tensor:
        """Clips (B, T, H, W) -> frame features (B, T, frame_dim) (T = 1 for the frame bag)."""
        return self._features(self._maps(x), len(x))

    def _encode(self, x: Tensor) -> tuple[_Memory, tuple[Tensor, Tensor]]:
        """Clips (B, T, H, W) -> what the decoder attends over, and its initial state."""
        b = len(x)
        m = self._maps(x)
        f = self._features(m, b)
        if self.config.temporal:
            out, state = self.frame_rnn(f)  # (B, T, frame_dim) -> (B, T, hidden), ((1, B, hidden) x 2)
            # the decoder attends over the LSTM's outputs plus the frame features themselves: what
            # is in a frame reaches the words without passing through the recurrence
            frames = out + self.skip(f)
        else:
            frames = torch.tanh(self.to_memory(f))  # (B, 1, hidden)
            h0, c0 = self.to_state(f[:, 0]).chunk(2, -1)
            state = (torch.tanh(h0).unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous())
        if not self.config.spatial_attention:
            return _Memory(frames), state
        sm = self.spatial(m)  # (B*T, spatial_dim, h, w)
        n, c, h, w = sm.shape
        values = sm.permute(0, 2, 3, 1).reshape(b, n // b, h * w, c)  # (B, T, P, spatial_dim)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=sm.device), torch.linspace(-1, 1, w, device=sm.device), indexing="ij"
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], 1).to(sm.dtype)  # (P, 2): x, y of each position
        return _Memory(frames, self.s_key(values), values, grid), state

    def encode_clip(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Clips (B, T, H, W) -> attention memory over frames (B, T', hidden) and the decoder's initial state."""
        mem, state = self._encode(x)
        return mem.frames, state

    def encode(self, x: Tensor) -> Tensor:
        """A clip code (B, hidden): the frame LSTM's last hidden state (the decoder's start)."""
        return self.encode_clip(x)[1][0][-1]

    # -- decoder ----------------------------------------------------------------------------------
    def _attend(self, out: Tensor, mem: _Memory) -> Tensor:
        """Decoder outputs (B, L, hidden) attend over the memory -> logits (B, L, vocab)."""
        scores = out @ self.attn(mem.frames).transpose(1, 2)  # (B, L, T)
        parts = [out, scores.softmax(-1) @ mem.frames]  # + context (B, L, hidden)
        if self.config.spatial_attention:
            parts += self._look(out, mem)
        mixed = torch.tanh(self.combine(torch.cat(parts, -1)))
        return self.head(self.drop(mixed))

    def _look(self, out: Tensor, mem: _Memory) -> list[Tensor]:
        """Spatial attention, one softmax over the positions of each frame.

        Returns what is found, averaged over the frames (B, L, spatial_dim), and the motion GRU's
        reading of where it is found in each frame (B, L, motion_hidden).
        """
        a = self._spatial_weights(out, mem)  # (B, L, T, P)
        b, n_words, t, p = a.shape
        what = (a.view(b, n_words, t * p) @ mem.values.reshape(b, t * p, -1)) / t  # (B, L, spatial_dim)
        where = a @ mem.grid  # (B, L, T, 2): the attention-weighted position in each frame
        # steps between frames, scaled to about one unit per map cell
        step = torch.diff(where, dim=2, prepend=where[:, :, :1]) * (0.5 * math.sqrt(p))
        _, h = self.motion_rnn(torch.cat([where, step], -1).reshape(b * n_words, t, 4))
        return [what, h[-1].view(b, n_words, -1)]

    def _spatial_weights(self, out: Tensor, mem: _Memory) -> Tensor:
        """Decoder outputs (B, L, hidden) -> attention weights (B, L, T, P), summing to 1 per frame."""
        b, t, p, _ = mem.keys.shape
        q = self.s_query(out) * self.config.hidden**-0.5  # (B, L, hidden)
        scores = (q @ mem.keys.reshape(b, t * p, -1).transpose(1, 2)).view(b, -1, t, p)  # (B, L, T, P)
        return scores.softmax(-1)

    @torch.no_grad()
    def attention_maps(self, x: Tensor, ids: Tensor) -> Tensor:
        """Where each word looks: spatial attention weights (B, L + 1, T, h, w) for the captions ``ids``.

        Teacher-forced over ``ids`` (B, L) (e.g. the model's own captions): step ``i`` is the
        attention while writing word ``i`` (the last step writes <eos>). Each frame's map sums to
        one. Needs ``spatial_attention=True``.
        """
        if not self.config.spatial_attention:
            raise ConfigError("attention maps need a captioner built with spatial_attention=True (preset 'spatial')")
        out, mem = self._teacher_forced(x, ids)
        a = self._spatial_weights(out, mem)  # (B, L + 1, T, P)
        w = int((mem.grid[:, 1] == mem.grid[0, 1]).sum())  # positions in the first row
        return a.view(*a.shape[:3], -1, w)

    @staticmethod
    def targets(ids: Tensor) -> Tensor:
        """Each caption followed by <eos>, shape (B, L + 1), PAD after."""
        lengths = (ids != PAD).sum(1)
        tgt = F.pad(ids, (0, 1), value=PAD)
        tgt[torch.arange(len(ids), device=ids.device), lengths] = EOS
        return tgt

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        """Teacher-forced logits (B, L + 1, vocab_size) of the captions ``ids`` (B, L) and their <eos>."""
        return self._attend(*self._teacher_forced(x, ids))

    def _teacher_forced(self, x: Tensor, ids: Tensor) -> tuple[Tensor, _Memory]:
        """Decoder outputs (B, L + 1, hidden) reading <bos> + the captions ``ids``, and the clips' memory."""
        mem, state = self._encode(x)
        prev = F.pad(ids, (1, 0), value=BOS)  # (B, L + 1): <bos>, w_1, ..., w_L
        out, _ = self.decoder_rnn(self._inputs(prev, mem), state)  # one batched call over the caption
        return out, mem

    def _inputs(self, prev: Tensor, mem: _Memory) -> Tensor:
        """Decoder inputs (B, L, embed_dim [+ hidden]) for previous tokens (B, L)."""
        e = self.embed(prev)
        if not self.config.feed_clip:
            return e
        clip = mem.frames.mean(1, keepdim=True).expand(-1, prev.shape[1], -1)  # (B, L, hidden)
        return torch.cat([e, clip], -1)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy of every next word (and <eos>), averaged over the words of the batch."""
        x, ids = batch
        ids = ids.long()
        keep = int((ids != PAD).sum(1).max()) if ids.numel() else 0
        ids = ids[:, :keep]  # trim the batch to its longest caption
        logits = self(x, ids)
        tgt = self.targets(ids)
        mask = tgt != PAD
        sel = logits[mask].float()  # (n_words, vocab)
        ce = F.cross_entropy(sel, tgt[mask], weight=self.word_weight.float())
        acc = (sel.argmax(1) == tgt[mask]).float().mean()
        return {"loss": ce, "ce": ce, "token_accuracy": acc.detach()}

    def _step(self, tok: Tensor, state, mem: _Memory):
        """One decoder step: previous tokens (B,) -> log-probabilities (B, vocab), new state."""
        out, state = self.decoder_rnn(self._inputs(tok.unsqueeze(1), mem), state)  # (B, 1, hidden)
        logits = self._attend(out, mem)[:, 0].float()
        logits[:, PAD] = -math.inf  # padding and <bos> are never generated
        logits[:, BOS] = -math.inf
        return F.log_softmax(logits, -1), state

    @torch.no_grad()
    def generate(self, x: Tensor, beam: int = 1, max_len: int | None = None) -> Tensor:
        """Captions of clips (B, T, H, W) as ids (B, L), cut at <eos>, right-padded with PAD.

        ``beam=1`` is greedy decoding; ``beam > 1`` beam search (the most probable caption among
        the beams; a finished beam keeps its score).
        """
        if beam < 1:
            raise ConfigError(f"beam must be >= 1, got {beam}")
        if beam > 1:
            return self.beam_search(x, beam, max_len)
        mem, state = self._encode(x)
        steps = (max_len or self.max_len) + 1
        return decoding.greedy_decode(lambda tok, st: self._step(tok, st, mem), state, len(x), steps, mem.frames.device)

    @torch.no_grad()
    def beam_search(self, x: Tensor, beam: int = 5, max_len: int | None = None) -> Tensor:
        """Beam search over captions of clips (B, T, H, W): ids (B, L) as :meth:`generate`.

        Batched over clips and beams; ``beam=1`` gives the greedy caption.
        """
        if beam < 1:
            raise ConfigError(f"beam must be >= 1, got {beam}")
        mem, state = self._encode(x)
        steps = (max_len or self.max_len) + 1
        v = self.config.vocab_size
        k = min(beam, v - 2)
        mem = mem.repeat(k)  # each clip's memory K times in a row
        state = decoding.take_state(state, torch.arange(len(x), device=mem.frames.device).repeat_interleave(k))
        return decoding.beam_decode(
            lambda tok, st: self._step(tok, st, mem), state, len(x), k, v, steps, mem.frames.device
        )

    # -- pretraining ------------------------------------------------------------------------------
    def init_frame_encoder(self, conv_ae: nn.Module) -> VideoCaptionNet:
        """Copy the convolutions of a trained ``conv_ae``'s encoder into the frame CNN.

        Needs ``cnn="pooled"`` with the same ``channels`` and ``kernel_size`` and a one-channel
        conv_ae (e.g. ``conv_ae:tutorial`` trained on MNIST with the ``pooled`` preset); the
        convolutions do not depend on the frame size, so 28x28 digits initialise 64x64 frames.
        Only the convolutions are copied (batch norms, if any, start fresh).
        """
        if getattr(conv_ae, "model_name", None) != "conv_ae":
            raise ConfigError(f"the frame encoder is initialised from a conv_ae model, got a {type(conv_ae).__name__}")
        if self.config.cnn != "pooled":
            raise ConfigError("initialising from conv_ae needs cnn='pooled' (conv_ae's conv + max-pool layout)")
        theirs = [m for m in conv_ae.encoder if isinstance(m, nn.Conv2d)]
        ours = [m for m in self.cnn if isinstance(m, nn.Conv2d)]
        shapes = [tuple(m.weight.shape) for m in theirs], [tuple(m.weight.shape) for m in ours]
        if shapes[0] != shapes[1]:
            raise ConfigError(
                f"the conv_ae's encoder convolutions {shapes[0]} do not match the frame CNN's {shapes[1]}; "
                "build the captioner with the conv_ae's channels and kernel_size"
            )
        with torch.no_grad():
            for a, b in zip(theirs, ours):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
        return self
