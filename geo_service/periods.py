"""Moments written as people write them on a command line or in a query: `90d`, `12h`, or an ISO date."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

SPAN = re.compile(r"^\s*(\d{1,6})\s*([dh])\s*$", re.IGNORECASE)
UNITS = {"d": "days", "h": "hours"}


def moment(text: str, now: datetime, *, ago: bool) -> datetime:
    """`Nd` or `Nh` from `now` (back when `ago`, forward otherwise), or an ISO 8601 date or date-time
    (UTC when it names no offset). A ValueError says what is accepted."""
    match = SPAN.match(text)
    if match:
        span = timedelta(**{UNITS[match[2].lower()]: int(match[1])})
        return now - span if ago else now + span
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write a number of days or hours (90d, 12h) or an ISO date "
            "(2027-03-01, 2027-03-01T08:00+08:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
