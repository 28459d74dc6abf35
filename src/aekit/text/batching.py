"""Variable-length batches: truncation (with a warning), right padding, packing for RNNs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from ..errors import DataError
from .vocab import PAD, Vocabulary


def truncate(sentences: Sequence[Sequence[str]], max_len: int, *, who: str = "text") -> list[list[str]]:
    """Cut sentences to ``max_len`` tokens, warning once (with a count) when any was longer."""
    long = [i for i, s in enumerate(sentences) if len(s) > max_len]
    if long:
        longest = max(len(sentences[i]) for i in long)
        warnings.warn(
            f"{who}: {len(long)} sentence(s) longer than max_len={max_len} tokens (the longest has "
            f"{longest}; first at index {long[0]}) were truncated; raise max_len to keep them whole",
            UserWarning,
            stacklevel=3,
        )
    return [list(s[:max_len]) for s in sentences]


def check_not_empty(sentences: Sequence[Sequence[str]], *, who: str = "text") -> None:
    """Refuse sentences without a single token (an empty line, or only control characters)."""
    if len(sentences) == 0:
        raise DataError(f"{who}: no sentences given")
    empty = [i for i, s in enumerate(sentences) if len(s) == 0]
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        raise DataError(
            f"{who}: {len(empty)} sentence(s) have no tokens (at index {shown}); remove empty lines first"
        )


def encode_batch(vocab: Vocabulary, sentences: Sequence[Sequence[str]], *, pad_to: int | None = None) -> Tensor:
    """Token lists -> ids of shape (n, T), right-padded with ``PAD`` (T = ``pad_to`` or the longest)."""
    width = pad_to if pad_to is not None else max((len(s) for s in sentences), default=0)
    ids = torch.full((len(sentences), max(width, 1)), PAD, dtype=torch.long)
    for i, s in enumerate(sentences):
        row = vocab.encode(s[:width])
        if row:
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


def lengths_of(ids: Tensor) -> Tensor:
    """Lengths of right-padded id rows: the count of non-``PAD`` ids, shape (n,)."""
    return (ids != PAD).sum(1)


def trim(ids: Tensor) -> tuple[Tensor, Tensor]:
    """``(ids[:, :longest], lengths)``: drop the columns that are padding in every row.

    The Trainer batches fixed-width rows; trimming each batch to its longest sentence keeps
    recurrent and tree work proportional to the text, not to ``max_len``. Ids arriving as floats
    (the Trainer stores inputs as float32; ids up to 2**24 are exact) are turned back to ints.
    """
    ids = ids.long() if ids.is_floating_point() else ids
    lengths = lengths_of(ids)
    return ids[:, : max(int(lengths.max()), 1)], lengths


def pack(x: Tensor, lengths: Tensor) -> PackedSequence:
    """Pack a right-padded (B, T, ...) batch for an RNN (any order of lengths; zeros become 1)."""
    return pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
