"""As-of dates: what churnguard takes as the moment features are computed at.

An as-of value is a date (a midnight, naive UTC): features at ``T`` use everything before
midnight of ``T``, so windows hold whole days. Every date, in the data and as an as-of date,
lies in :data:`FIRST_DATE` to :data:`LAST_DATE`: far enough from the calendar's ends that a
window or horizon of any length still fits, wide enough for any history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from churnguard.errors import ConfigError

FIRST_DATE, LAST_DATE = dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)

AsOf = dt.date | dt.datetime | str


def normalize_as_of(as_of: Iterable[AsOf]) -> list[dt.datetime]:
    """Sorted, distinct as-of dates as midnight datetimes; refuses times of day, dates outside
    :data:`FIRST_DATE` to :data:`LAST_DATE`, and no dates."""
    out = set()
    for value in as_of:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ConfigError(f"as-of date {value!r} is not a date like 2025-01-31") from None
        if isinstance(value, dt.datetime):
            if value.time() != dt.time():
                raise ConfigError(
                    f"as-of {value.isoformat()} has a time of day; as-of values are dates "
                    "(features at T use everything before midnight of T)"
                )
            out.add(value.replace(tzinfo=None))
        elif isinstance(value, dt.date):
            out.add(dt.datetime.combine(value, dt.time()))
        else:
            raise ConfigError(f"as-of date {value!r} is not a date")
    if not out:
        raise ConfigError("at least one as-of date is needed")
    outside = [d for d in out if not FIRST_DATE <= d < LAST_DATE]
    if outside:
        raise ConfigError(
            f"date {min(outside).date()} is outside {FIRST_DATE.date()} to {LAST_DATE.date()}"
        )
    return sorted(out)


def one_as_of(value: AsOf) -> dt.datetime:
    """A single as-of date, normalised."""
    return normalize_as_of([value])[0]
