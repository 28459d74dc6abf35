"""Text basics for the sequence autoencoders: tokenizer, vocabulary, text files, padded batches."""

from .batching import check_not_empty, encode_batch, lengths_of, pack, trim, truncate
from .files import class_names_for, read_labels, read_lines
from .tokenize import tokenize
from .vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocabulary

__all__ = [
    "BOS", "EOS", "PAD", "SPECIALS", "UNK", "Vocabulary", "check_not_empty", "class_names_for", "encode_batch",
    "lengths_of", "pack", "read_labels", "read_lines", "tokenize", "trim", "truncate",
]
