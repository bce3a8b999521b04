"""An initial page's link rows, held for one commit with the progress that counts them.

The executor writes a pending row before each create and the finished rows after; for an
initial page the range write-ahead (``InitialProgress.reserved``) stands for the pending
rows, so both writes are collected here and only each pair's last version is committed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.sync.links import InitialProgress, InitialState, LinkRow


class PageRows:
    """The ``LinkRows`` an initial page's executor writes to (reads are the caller's)."""

    def __init__(self) -> None:
        self._rows: dict[str, LinkRow] = {}

    def write(self, partition: str, rows: Sequence[tuple[LinkRow | None, LinkRow]]) -> None:
        for _, row in rows:
            self._rows[row.link_id] = row

    def forget(self, partition: str, rows: Sequence[LinkRow]) -> None:
        for row in rows:
            self._rows.pop(row.link_id, None)

    def rows(self) -> list[LinkRow]:
        return list(self._rows.values())

    def load(self, partition: str, *, crm_ids: Iterable[str] = (), outlook_ids: Iterable[str] = (),
             every: list[LinkRow] | None = None) -> list[LinkRow]:
        raise NotImplementedError("an initial page's rows are read by the initial sync")

    def pending(self, partition: str) -> list[LinkRow]:
        raise NotImplementedError("an initial page's rows are read by the initial sync")

    def all(self, partition: str) -> list[LinkRow]:
        raise NotImplementedError("an initial page's rows are read by the initial sync")

    def series_outlook_ids(self, partition: str) -> list[str]:
        raise NotImplementedError("an initial page's rows are read by the initial sync")

    def purge(self, partition: str) -> int:
        raise NotImplementedError("an initial page's rows are read by the initial sync")

    def initial_state(self, partition: str) -> InitialState:
        raise NotImplementedError("the initial sync keeps its state itself")

    def select(self, partition: str, ids: Sequence[str], progress: InitialProgress, *, replacing: InitialState) -> None:
        raise NotImplementedError("the initial sync keeps its state itself")

    def commit(self, partition: str, rows: Sequence[LinkRow], progress: InitialProgress) -> None:
        raise NotImplementedError("the initial sync commits its pages itself")
