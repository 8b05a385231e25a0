"""Log capture for the operator's-view tests."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class Records(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def kept_records(name: str | None, level: int) -> Iterator[Records]:
    """Every record of logger `name` (None: the root, so every logger) at `level` and above, meanwhile."""
    logger = logging.getLogger(name)
    handler, saved = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
