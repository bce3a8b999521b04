"""Link rows in Table Storage: one partition per member, kind and generation (DESIGN §7).

One entity per pair, RowKey ``link|{link id}``, with the pair's item ids as properties
(``crm_id``, ``outlook_id``, ``series``) instead of one index row per id: an initial sync
then writes 99 pairs and its progress in one entity-group transaction (issue 21), and a
change of a linked item is one read and one write. A cycle finds the rows its changes touch
with one filtered query per 14 ids (Table Storage allows 15 comparisons in a filter; the
partition key is one): the service scans the member's partition for them, which costs one
transaction whatever the partition's size, where index rows cost one point read each. Past
``FILTERED_READS_BEFORE_SCAN`` queries, one scan of the link rows is cheaper still.

A pending create or a tombstone carries no id property: a pending create is loaded by every
cycle (it needs recovery), a tombstone is no item's pair any more (its ids are retired).

Rows written before this layout (index rows ``crm|``, ``ol|``, ``series|``) were never
deployed to a customer: none exist that need migrating (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import JsonValue

from shared.storage import TableEntity, TableOperation, TableRepository
from shared.storage.tables import MAX_FILTER_COMPARISONS, MAX_TRANSACTION_BYTES, MAX_TRANSACTION_OPERATIONS
from shared.sync.links import InitialProgress, InitialState, LinkRow, LinkState

LINK_PREFIX = "link|"
# The initial sync's selection ("selection|00000", ...) and progress, read together.
SELECTION_PREFIX, SELECTION_END = "selection|", "selection}"
PROGRESS_KEY = "selection|progress"
# A selection row's ids are one JSON string property: Table Storage allows 64 KiB of UTF-16,
# so 32,768 characters. Rows are filled by size (ids of any length), with room to spare.
CHUNK_CHARACTERS = 30_000
# Table Storage's comparisons per filter, less the partition key's.
COMPARISONS_PER_QUERY = MAX_FILTER_COMPARISONS - 1
FILTERED_READS_BEFORE_SCAN = 4
# A partition this small is read whole in one request (a filtered query costs about what parsing
# 100 rows does).
SMALL_PARTITION = 200


class LinkEntity(TableEntity):
    """RowKey = "link|{id}"; ``row`` is the pair; the ids are properties a filter can find."""

    link_id: str
    state: str
    crm_id: str | None = None
    outlook_id: str | None = None
    series: bool = False  # a recurring series: its master is re-read when occurrences vanish
    row: dict[str, JsonValue]


def _entity(partition: str, row: LinkRow) -> LinkEntity:
    stored = row.model_dump(mode="json")
    if stored.get("pending_since") is None:
        # Written only while a create is pending: rows otherwise stay readable by an
        # instance of the previous release during a rolling deployment (LinkRow forbids
        # unknown fields).
        stored.pop("pending_since", None)
    findable = row.state.creating_on is None and row.state is not LinkState.TOMBSTONE
    return LinkEntity(
        partition_key=partition, row_key=f"{LINK_PREFIX}{row.link_id}", link_id=row.link_id, state=row.state.value,
        crm_id=row.crm_id if findable else None, outlook_id=row.outlook_id if findable else None,
        series=findable and bool(row.fields.get("recurrence")), row=stored,
    )


class LinkStore:
    def __init__(self, repository: TableRepository[LinkEntity]) -> None:
        self._repo = repository

    def load(self, partition: str, *, crm_ids: Iterable[str] = (), outlook_ids: Iterable[str] = (),
             every: list[LinkRow] | None = None) -> list[LinkRow]:
        """The rows these items belong to, plus every pending create (they need recovery).
        A tombstone belongs to no item any more (its ids are retired): it is not returned.

        ``every``: the partition's rows, already scanned by the caller."""
        comparisons = [("crm_id", i) for i in sorted(set(crm_ids))] + [("outlook_id", i) for i in sorted(set(outlook_ids))]
        queries = -(-(len(comparisons) + 2) // COMPARISONS_PER_QUERY)
        if every is not None or queries > FILTERED_READS_BEFORE_SCAN:
            wanted = {"crm_id": set(crm_ids), "outlook_id": set(outlook_ids)}
            return [
                row for row in (self.all(partition) if every is None else every)
                if row.state.creating_on is not None
                or row.state is not LinkState.TOMBSTONE and (row.crm_id in wanted["crm_id"] or row.outlook_id in wanted["outlook_id"])
            ]
        pending = [("state", LinkState.PENDING_CREATE_OUTLOOK.value), ("state", LinkState.PENDING_CREATE_CRM.value)]
        rows: dict[str, LinkRow] = {}
        terms = pending + comparisons
        for start in range(0, len(terms), COMPARISONS_PER_QUERY):
            for row in self._where(partition, terms[start:start + COMPARISONS_PER_QUERY]):
                rows[row.link_id] = row
        return list(rows.values())

    def names_any(self, partition: str, crm_ids: Iterable[str], *, pairs: int | None = None) -> bool:
        """Whether a pair of the partition, or a pending create, names one of these CRM records
        (a deletion's routing, ``shared.sync.crm_routing``): ``load``'s filtered queries, 14 ids
        each, stopping at the first that finds one. Every member of the org is asked so when a
        CRM deletion has no owner to tell; ``load`` scans a partition when the ids need more than
        4 queries, which made a mass deletion parse every link of every member (10,000 each at
        the contacts cap). ``pairs``: about how many the partition holds (the profile's count),
        when known: a partition of at most ``SMALL_PARTITION`` is read whole, in one request."""
        wanted = set(crm_ids)
        if not wanted:
            return False
        if pairs is not None and pairs <= SMALL_PARTITION:
            return any(row.crm_id in wanted and row.state is not LinkState.TOMBSTONE for row in self.all(partition))
        pending = [("state", LinkState.PENDING_CREATE_OUTLOOK.value), ("state", LinkState.PENDING_CREATE_CRM.value)]
        terms = pending + [("crm_id", i) for i in sorted(wanted)]
        for start in range(0, len(terms), COMPARISONS_PER_QUERY):
            if any(row.crm_id in wanted and row.state is not LinkState.TOMBSTONE
                   for row in self._where(partition, terms[start:start + COMPARISONS_PER_QUERY])):
                return True
        return False

    def _where(self, partition: str, terms: Sequence[tuple[str, str]]) -> list[LinkRow]:
        where = " or ".join(f"{name} eq @p{n}" for n, (name, _) in enumerate(terms))
        found = self._repo.query(partition, where=where, parameters={f"p{n}": value for n, (_, value) in enumerate(terms)})
        return [LinkRow.model_validate(s.entity.row) for s in found if s.entity.row_key.startswith(LINK_PREFIX)]

    def series_outlook_ids(self, partition: str) -> list[str]:
        """The Outlook ids of the member's linked recurring series."""
        found = self._repo.query(partition, where="series eq @yes", parameters={"yes": True})
        return [s.entity.outlook_id for s in found if s.entity.outlook_id]

    def pending(self, partition: str) -> list[LinkRow]:
        return self._where(partition, [("state", LinkState.PENDING_CREATE_OUTLOOK.value),
                                       ("state", LinkState.PENDING_CREATE_CRM.value)])

    def all(self, partition: str) -> list[LinkRow]:
        return [
            LinkRow.model_validate(s.entity.row)
            for s in self._repo.query(partition, where="RowKey ge @lo and RowKey lt @hi", parameters={"lo": "link|", "hi": "link}"})
        ]

    def write(self, partition: str, rows: Sequence[tuple[LinkRow | None, LinkRow]]) -> None:
        """Write new versions of rows (``(previous, new)``), in transactions of up to 100
        (the last version of a pair wins)."""
        latest = {row.link_id: row for _, row in rows}
        self._repo.transact([TableOperation("upsert", _entity(partition, row)) for row in latest.values()])

    def forget(self, partition: str, rows: Sequence[LinkRow]) -> None:
        for row in {r.link_id: r for r in rows}.values():  # deleting an absent row fails a whole transaction
            self._repo.delete(partition, f"{LINK_PREFIX}{row.link_id}")

    def purge(self, partition: str) -> int:
        """Delete every row of the partition (Disable): returns how many pairs were forgotten."""
        entities = list(self._repo.query(partition))
        self._repo.transact([TableOperation("delete", s.entity) for s in entities])
        return sum(1 for s in entities if s.entity.row_key.startswith(LINK_PREFIX))

    # -- the initial sync: its selection, its progress, its pages -------------------------------

    def initial_state(self, partition: str) -> InitialState:
        """The selection and the progress, in one read (they share a key range)."""
        found = [s.entity for s in self._repo.query(
            partition, where="RowKey ge @lo and RowKey lt @hi", parameters={"lo": SELECTION_PREFIX, "hi": SELECTION_END})]
        chunks = sorted((e for e in found if e.row_key != PROGRESS_KEY), key=lambda e: e.row_key)
        progress = next((InitialProgress.model_validate(e.row) for e in found if e.row_key == PROGRESS_KEY), None)
        ids = [str(i) for chunk in chunks for i in chunk.row.get("ids", [])] if chunks else None  # type: ignore[union-attr]
        return InitialState(ids, progress, len(chunks))

    def progress(self, partition: str) -> InitialProgress | None:
        """The progress alone (one point read): what the member's page shows while a step runs."""
        found = self._repo.get(partition, PROGRESS_KEY)
        return InitialProgress.model_validate(found.entity.row) if found is not None else None

    def select(self, partition: str, ids: Sequence[str], progress: InitialProgress, *, replacing: InitialState) -> None:
        """Save a selection (the ids in the order they are sent) with the progress that
        reserves its first pages, in one transaction; rows of a longer earlier selection go."""
        rows = [_selection_row(partition, n, chunk) for n, chunk in enumerate(selection_chunks(ids))]
        stale = [TableOperation("delete", _selection_row(partition, n, [])) for n in range(len(rows), replacing.chunks)]
        self._repo.transact([*(TableOperation("upsert", r) for r in rows), *stale, TableOperation("upsert", _progress_row(partition, progress))])

    def commit(self, partition: str, rows: Sequence[LinkRow], progress: InitialProgress) -> None:
        """A page's link rows and the progress that counts them, in one transaction when they
        fit (99 rows and the progress are 100 operations). Rows too large for one are written
        first, the progress last: a crash between them leaves rows the progress does not count
        yet, which the next attempt finds by their items' markers and writes again."""
        ops = [TableOperation("upsert", _entity(partition, row)) for row in {r.link_id: r for r in rows}.values()]
        marker = _progress_row(partition, progress)
        together = [*ops, TableOperation("upsert", marker)]
        if len(together) <= MAX_TRANSACTION_OPERATIONS and _size(together) <= MAX_TRANSACTION_BYTES:
            self._repo.transact(together)
            return
        self._repo.transact(ops)
        self._repo.upsert(marker)


# The selection and the progress have the links' shape (one repository, one transaction);
# no query of the link rows finds them (no ids, no link state, outside the "link|" range).
def _selection_row(partition: str, number: int, ids: list[str]) -> LinkEntity:
    return LinkEntity(partition_key=partition, row_key=f"{SELECTION_PREFIX}{number:05d}", link_id="", state="selection",
                      row={"ids": list(ids)})


def _progress_row(partition: str, progress: InitialProgress) -> LinkEntity:
    return LinkEntity(partition_key=partition, row_key=PROGRESS_KEY, link_id="", state="progress",
                      row=progress.model_dump(mode="json"))


def selection_chunks(ids: Sequence[str]) -> list[list[str]]:
    """The ids in order, in rows whose JSON stays under ``CHUNK_CHARACTERS`` (at least one row)."""
    chunks: list[list[str]] = [[]]
    size = 2  # the list's brackets
    for item in ids:
        cost = len(item) + 3  # its quotes and a comma (ids are digits: nothing to escape)
        if chunks[-1] and size + cost > CHUNK_CHARACTERS:
            chunks.append([])
            size = 2
        chunks[-1].append(item)
        size += cost
    return chunks


def _size(ops: Sequence[TableOperation[LinkEntity]]) -> int:
    """As ``TableRepository.transact`` estimates a transaction's payload."""
    return sum(len(op.entity.model_dump_json()) * 2 + 512 for op in ops)
