"""Greedy and beam-search decoding on a hand-made step function with known probabilities."""

import torch

from aekit.models.decoding import beam_decode, cut_at_eos, greedy_decode, take_state
from aekit.text.vocab import EOS, PAD

A, B, C = 4, 5, 6  # ordinary tokens after the 4 specials
V = 7


def _step(tok, state):
    """First step: A 0.6, B 0.4. After A: C or EOS at 0.5 each (and C, C, ... forever). After B: EOS."""
    n = len(tok)
    p = torch.full((n, V), 1e-9)
    first = state[0] == 0
    p[first, A], p[first, B] = 0.6, 0.4
    after_a = ~first & ((tok == A) | (tok == C))
    p[after_a, C], p[after_a, EOS] = 0.5, 0.5
    after_b = ~first & (tok == B)
    p[after_b, EOS] = 1.0
    return (p / p.sum(1, keepdim=True)).log(), state + 1


def test_beam_search_finds_the_more_probable_sequence_greedy_misses():
    state = torch.zeros(1, 2)  # (1, batch) like an RNN state; counts the steps
    greedy = greedy_decode(_step, state, 2, 6, torch.device("cpu"))
    assert greedy[0].tolist()[:1] == [A]  # 0.6 first, then 0.5 at best: A <eos> is 0.3
    k = 3
    beams = beam_decode(_step, state.repeat_interleave(k, 1), 2, k, V, 6, torch.device("cpu"))
    assert beams[:, 0].tolist() == [B, B] and (beams[:, 1:] == PAD).all()  # B <eos>: 0.4 > A <eos>: 0.3
    one = beam_decode(_step, state, 2, 1, V, 6, torch.device("cpu"))
    assert torch.equal(one, greedy)


def test_cut_at_eos_and_take_state():
    seq = torch.tensor([[A, EOS, C, C], [B, C, C, C]])
    assert cut_at_eos(seq).tolist() == [[A, PAD, PAD, PAD], [B, C, C, C]]
    h = torch.arange(6.0).view(1, 3, 2)
    idx = torch.tensor([2, 0])
    assert torch.equal(take_state(h, idx), h[:, idx])
    pair = take_state((h, h + 1), idx)
    assert torch.equal(pair[1], (h + 1)[:, idx])
