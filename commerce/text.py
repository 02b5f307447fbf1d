"""Text folding shared by shop slugs and catalog search.

Vietnamese buyers type with and without diacritics ("áo" and "ao"), so both slugs and
the stored search text are folded to lowercase ASCII-ish text. Folding is done in
Python, not with database functions, so SQLite and PostgreSQL search the same way.
"""

from __future__ import annotations

import re
import unicodedata

# Letters that carry no combining mark, so NFKD leaves them alone.
_NO_DECOMPOSITION = str.maketrans({"đ": "d", "ð": "d", "ø": "o", "ł": "l", "æ": "ae"})
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lowercase `text` and strip its diacritics: "Áo Đẹp" -> "ao dep"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_NO_DECOMPOSITION))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def slugify(text: str, max_length: int = 120) -> str:
    """A URL slug of ASCII letters, digits and single hyphens; empty when nothing is left."""
    return _NOT_SLUG.sub("-", fold(text))[:max_length].strip("-")
