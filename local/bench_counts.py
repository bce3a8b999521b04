"""Benchmarks only (``make bench``): let the benchmark runner read this host process's Table
Storage request counts. Active only when ``BENCH_TABLE_COUNTS_FILE`` is set, which nothing but
``bench/`` does; the deployed app never runs this module (``local/`` is not deployed).

On SIGUSR1 the host writes ``{"seq", "pid", "table": {transactions, reads, writes}}`` to that
file (atomically); the counts are the product's own per-process counter
(``shared.storage.metrics.TABLE_REQUESTS``), so they include every Table request the host's
functions made, and nothing the runner made.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any


def install(path: Path) -> None:
    from shared.storage.metrics import TABLE_REQUESTS  # the product's counter, fed by its table clients

    sequence = 0

    def write(*_: Any) -> None:
        nonlocal sequence
        sequence += 1
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"seq": sequence, "pid": os.getpid(), "table": TABLE_REQUESTS.snapshot(),
                                         "by_table": TABLE_REQUESTS.by_table()}))
        os.replace(temporary, path)

    write()
    signal.signal(signal.SIGUSR1, write)
