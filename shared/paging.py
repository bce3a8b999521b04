"""Long lists shown a page at a time (the admin's pages of a big org: Sync activity, Users),
with the page asked for by ``?page=`` (pure)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
PAGE_SIZE = 100  # rows a page shows (an org of 10,000 members is 100 pages)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page: its rows, its number (from 1) of ``pages``, and how many rows in all."""

    rows: list[T]
    number: int
    pages: int
    total: int


def page_of(rows: Sequence[T], requested: str | None, size: int = PAGE_SIZE) -> Page[T]:
    """The page asked for: a number (ASCII digits, up to 6) out of range is the nearest page,
    anything else the first (a navigation link typed by hand changes nothing)."""
    pages = max(1, -(-len(rows) // size))
    number = int(requested) if requested and re.fullmatch(r"[0-9]{1,6}", requested) else 1
    number = min(max(number, 1), pages)
    return Page(list(rows[(number - 1) * size:number * size]), number, pages, len(rows))


def name_key(name: str) -> str:
    """The order people expect names in: case ignored, an accented letter as its letter
    ("Élodie" between "Chloé" and "Zoé", not after them as code points put it)."""
    decomposed = unicodedata.normalize("NFKD", name.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
