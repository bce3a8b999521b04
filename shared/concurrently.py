"""Independent I/O calls a few at a time, in the caller's context (its correlation id on their
logs and Table request counts): a pool's threads start with an empty one otherwise."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each(call: Callable[[T], R], items: Sequence[T], *, at_once: int, name: str) -> list[R]:
    """``call`` on every item, ``at_once`` at a time, results in the items' order; the first
    exception raised is raised here once every call has ended."""
    if len(items) <= 1:
        return [call(item) for item in items]
    context = contextvars.copy_context()  # taken here: in the pool's threads it would be theirs
    with ThreadPoolExecutor(max_workers=min(at_once, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(lambda item: context.copy().run(call, item), items))
