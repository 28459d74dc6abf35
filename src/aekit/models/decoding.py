"""Greedy and beam-search decoding for the models that write token sequences (seq2seq_ae, video_captioner).

A model supplies one decoder step, ``step(tokens, state) -> (log_probs, state)``: the previous
tokens (N,), its recurrent state (a tensor or a tuple of tensors with the batch on dimension 1,
as ``nn.LSTM``/``nn.GRU`` keep it) and the next-token log-probabilities (N, vocab). Outputs are
token ids (B, L), cut at <eos> and right-padded with PAD.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..text.vocab import BOS, EOS, PAD

Step = Callable[[Tensor, Any], tuple[Tensor, Any]]


def cut_at_eos(seq: Tensor) -> Tensor:
    """Replace <eos> and everything after it by PAD."""
    after = (seq == EOS).long().cumsum(1) > 0
    return seq.masked_fill(after, PAD)


def take_state(state: Any, index: Tensor) -> Any:
    """Rows ``index`` of a recurrent state (batch on dimension 1), a tensor or a tuple of them."""
    return tuple(s[:, index] for s in state) if isinstance(state, tuple) else state[:, index]


@torch.no_grad()
def greedy_decode(step: Step, state: Any, batch: int, steps: int, device: torch.device) -> Tensor:
    """The most probable next token at every step, for ``steps`` steps at most."""
    tok = torch.full((batch,), BOS, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out = []
    for _ in range(steps):
        logp, state = step(tok, state)
        tok = logp.argmax(1).masked_fill(done, PAD)
        out.append(tok)
        done |= tok == EOS
        if bool(done.all()):
            break
    return cut_at_eos(torch.stack(out, 1))


@torch.no_grad()
def beam_decode(step: Step, state: Any, batch: int, beam: int, vocab: int, steps: int, device: torch.device) -> Tensor:
    """Beam search, batched over sequences and beams; the most probable sequence of each.

    ``state`` (and whatever ``step`` reads besides it) must already hold each sequence ``beam``
    times in a row (``repeat_interleave(beam)``). A beam that has emitted <eos> keeps its score.
    With ``beam=1`` this is greedy decoding.
    """
    k = beam
    tok = torch.full((batch * k,), BOS, dtype=torch.long, device=device)
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # one live beam at the start, so the K first candidates differ
    finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    seqs = torch.zeros(batch, k, 0, dtype=torch.long, device=device)
    only_pad = torch.full((vocab,), -math.inf, device=device)
    only_pad[PAD] = 0.0
    rows = torch.arange(batch, device=device).unsqueeze(1)
    for _ in range(steps):
        logp, state = step(tok, state)
        logp = torch.where(finished.unsqueeze(2), only_pad, logp.float().view(batch, k, vocab))  # finished: pad
        top, idx = (scores.unsqueeze(2) + logp).view(batch, -1).topk(k, dim=1)  # (B, K)
        src, tok2 = idx // vocab, idx % vocab
        seqs = torch.cat([seqs[rows, src], tok2.unsqueeze(2)], 2)
        finished = finished[rows, src] | (tok2 == EOS)
        scores = top
        state = take_state(state, (rows * k + src).view(-1))
        tok = tok2.view(-1)
        if bool(finished.all()):
            break
    best = scores.argmax(1)
    return cut_at_eos(seqs[torch.arange(batch, device=device), best])
