"""The Graph failures sync decides on: kept as a name for its importers; the one tree of Graph
errors is ``shared.graph.errors``."""

from shared.graph.errors import (
    DELTA_EXPIRED_CODES,
    AccessDenied,
    CalendarGone,
    ContactFolderGone,
    ContainerGone,
    ContainerNameTaken,
    DeltaExpired,
    ItemNotFound,
    MailboxThrottled,
    OutcomeUnknown,
    error_for,
    error_parts,
)

__all__ = ["DELTA_EXPIRED_CODES", "AccessDenied", "CalendarGone", "ContactFolderGone", "ContainerGone",
           "ContainerNameTaken", "DeltaExpired", "ItemNotFound", "MailboxThrottled", "OutcomeUnknown",
           "error_for", "error_parts"]
