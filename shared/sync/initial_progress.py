"""What the member sees of an initial sync while a step runs (the settings page, the admin's
activity page)."""

from __future__ import annotations

from collections.abc import Callable

from shared.sync.links import InitialProgress
from shared.sync.profiles import SyncProfile, SyncState


def as_committed(profile: SyncProfile, progress: InitialProgress | None) -> SyncProfile:
    """The member's initial sync as far as its pages are committed: a step writes the profile
    when it ends (its slice may last two minutes), but each page commits its progress as it
    goes, so the settings page counts from that (one point read per refresh) and the bar moves
    with every page. Never back: a selection made again restarts its count until its step ends."""
    if progress is None or profile.state is not SyncState.INITIAL:
        return profile
    ahead = max(0, progress.synced - profile.initial_done)
    return profile.model_copy(update={
        "initial_done": profile.initial_done + ahead, "synced_items": profile.synced_items + ahead,
        "initial_total": progress.total if progress.total is not None else profile.initial_total})


def as_seen(profile: SyncProfile, progress_of: Callable[[str], InitialProgress | None]) -> SyncProfile:
    """``as_committed``, the progress read (``LinkStore.progress``, one point read) only for an
    initial sync, and only in the links of the profile's own Enable (``links_partition``)."""
    if profile.state is not SyncState.INITIAL:
        return profile
    return as_committed(profile, progress_of(profile.links_partition))
