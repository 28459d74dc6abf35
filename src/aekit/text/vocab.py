"""A vocabulary: tokens <-> ids with a minimum count, an unknown token, and a JSON form."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigError, DataError, ModelFileError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
#: the special tokens, at ids 0..3: padding, unknown word, begin and end of sentence
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")


class Vocabulary:
    """Token <-> id mapping. Ids 0-3 are ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``.

    Build one with :meth:`build`; save it with :meth:`to_json` (a plain list of tokens, so
    the file can be read and checked by a person) and restore it with :meth:`from_json`.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ConfigError(f"a vocabulary starts with the special tokens {SPECIALS}")
        if len(set(tokens)) != len(tokens):
            raise ConfigError("a vocabulary holds every token once")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The tokens of ``sentences`` (lists of tokens) seen at least ``min_count`` times.

        Ordered by decreasing count (ties alphabetically); ``max_size`` caps the vocabulary
        (specials included). Rarer tokens map to ``<unk>``.
        """
        if min_count < 1:
            raise ConfigError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size <= len(SPECIALS):
            raise ConfigError(f"max_size must exceed the {len(SPECIALS)} special tokens, got {max_size}")
        counts = Counter(t for s in sentences for t in s)
        for s in SPECIALS:
            counts.pop(s, None)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        if not kept:
            raise DataError(
                f"no token occurs {min_count} or more times: the vocabulary would be empty; "
                "give more text or a lower min_count"
            )
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids; unknown tokens become ``UNK``."""
        get = self.index.get
        return [get(t, UNK) for t in tokens]

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> list[str]:
        """Tokens of ``ids``, without padding and begin markers, up to the first ``<eos>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS and stop_at_eos:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return out

    def unknown_rate(self, sentences: Iterable[Sequence[str]]) -> float:
        """The share of tokens in ``sentences`` that this vocabulary does not know."""
        n = unk = 0
        for s in sentences:
            n += len(s)
            unk += sum(t not in self.index for t in s)
        return unk / n if n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, doc: Any, *, where: str = "aekit.json") -> Vocabulary:
        try:
            tokens = doc["tokens"]
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise TypeError("tokens must be a list of strings")
            return cls(tokens)
        except (KeyError, TypeError, ConfigError) as err:
            raise ModelFileError(f"{where}: invalid vocabulary ({err})") from err
