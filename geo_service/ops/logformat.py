"""How the service's logs are written: one JSON object (or one text line) per record, on stderr.

Every logger goes through the one handler `configure_logging` installs: ours (the access log, the audit log,
errors), uvicorn's and the libraries'. The JSON formatter renders the `extra=` fields of a record as fields of
the line. A last pass over each line masks what looks like a credential (a URL's password, a Bearer token,
an API key, a libpq `password=`), whoever logged it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

from geo_service.settings import Settings

# (a word that any match contains, lower-cased: a line without it skips the pattern; the pattern)
SECRETS = (
    ("://", re.compile(r"(://[^:/@\s\"]+:)[^@\s\"]+@"), r"\1***@"),  # scheme://user:password@host
    ("bearer", re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1***"),
    ("jxp_", re.compile(r"jxp_[A-Za-z0-9_-]{8,}"), "jxp_***"),  # our API keys (geo_service.editing.keys)
    ("password", re.compile(r"(?i)(password\s*=\s*)('[^']*'|[^\s\"']+)"), r"\1***"),
)
# what every LogRecord has: anything else on a record came from `extra=` (uvicorn's `color_message` repeats
# its message with terminal colours)
STANDARD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",
}

# one encoder for every line: json.dumps with options builds a new one per call
encode_json = json.JSONEncoder(ensure_ascii=False, check_circular=False, default=str).encode


def mask_secrets(line: str) -> str:
    """The line with every credential-like part replaced by `***`."""
    lowered = line.lower()
    for word, pattern, replacement in SECRETS:
        if word in lowered:
            line = pattern.sub(replacement, line)
    return line


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, its `extra=` fields, the exception."""

    _second: tuple[int, str] = (0, "")  # the last second rendered, and its text

    def timestamp(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond (`2026-12-02T14:30:52.123Z`)."""
        second = int(created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """The record's line."""
        line = {
            "time": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in STANDARD_FIELDS:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return mask_secrets(encode_json(line))


class TextFormatter(logging.Formatter):
    """A record as one line of text for people: time, level, logger, message (and a traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record's line(s)."""
        return mask_secrets(super().format(record))


def configure_logging(settings: Settings) -> None:
    """Send every logger's records to stderr in the configured format and level (`jxplan serve`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    root.setLevel(level)
    # loggers that an earlier uvicorn configuration gave handlers of their own (and stopped from propagating)
    # write through the root's handler too, in the same format
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
        named.setLevel(logging.NOTSET)
    # SQLAlchemy's INFO is every SQL statement: only at debug level
    logging.getLogger("sqlalchemy").setLevel(level if level <= logging.DEBUG else logging.WARNING)
    # what no line shows is not looked up for every record (thread, process names)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
