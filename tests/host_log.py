"""The in-process host's recent log lines, kept for a failing test's message: CI shows the
tail of a run, so a timed-out wait must say what the host did meanwhile."""

from __future__ import annotations

import logging
import re
from collections import deque

NOTEWORTHY = re.compile(
    r"fail|error|deferred|left to|lost its lease|paused|dropped|skipped|refused|poison|sweep|throttl|retry|"
    r"answer lost|step of|Executing 'Functions\.sync_step",
    re.IGNORECASE,
)


class RecentLog(logging.Handler):
    """The last ``size`` noteworthy records of this process, formatted."""

    def __init__(self, size: int = 120) -> None:
        super().__init__(level=logging.INFO)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a diagnostic aid never breaks the test
            return
        if record.levelno >= logging.WARNING or NOTEWORTHY.search(line):
            self.lines.append(line[:400])

    def clear(self) -> None:
        self.lines.clear()


RECENT = RecentLog()


def install() -> None:
    """On the product's loggers and the host's (INFO: the step lines), not the root's (the
    Azure SDK's request lines would drown them)."""
    for name in ("shared", "Host"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if RECENT not in logger.handlers:
            logger.addHandler(RECENT)
