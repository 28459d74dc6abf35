"""A small, predictable word tokenizer: lower-casing and punctuation split off as tokens."""

from __future__ import annotations

import re
import unicodedata

# words keep inner apostrophes and hyphens ("don't", "well-made"); a clitic such as "'s" (as
# the MR corpus writes "it 's") stays one token; every other non-space character is a token
_TOKEN = re.compile(r"'\w+|\w+(?:[-']\w+)*|[^\w\s]")
# control and format characters (C0/C1 controls, zero-width spaces, ...) carry no text
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn"}


def tokenize(text: str, *, lower: bool = True) -> list[str]:
    """Split ``text`` into word and punctuation tokens.

    Unicode is normalised (NFKC, so e.g. full-width letters and ligatures become plain ones),
    control and unassigned characters are dropped, the text is lower-cased (``lower=True``) and
    split into words (with inner ``'`` and ``-``), clitics (``'s``) and single punctuation marks.
    Characters the vocabulary has never seen still become tokens; the vocabulary maps them to
    its unknown token.

    >>> tokenize("It's a well-made, FUNNY film!")
    ["it's", 'a', 'well-made', ',', 'funny', 'film', '!']
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    if any(unicodedata.category(c) in _INVISIBLE for c in text if not c.isspace()):
        text = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in _INVISIBLE)
    if lower:
        text = text.lower()
    return _TOKEN.findall(text)
