"""As-of dates: what churnguard takes as the moment features are computed at.

An as-of value is a date (a midnight, naive UTC): features at ``T`` use everything before
midnight of ``T``, so windows hold whole days. Every date, in the data and as an as-of date,
lies in :data:`FIRST_DATE` to :data:`LAST_DATE`: far enough from the calendar's ends that a
window or horizon of any length still fits, wide enough for any history.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable

import ibis
import ibis.expr.types as ir

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


def dates_table(dates: list[dt.datetime]) -> ir.Table:
    """Sorted as-of dates as a table to join rows to (:func:`at_dates`): ``as_of``, its
    position ``_i`` and ``_at``, its epoch seconds."""
    return ibis.memtable(
        {"as_of": dates, "_i": range(len(dates)), "_at": [epoch(d) for d in dates]},
        schema={"as_of": "timestamp", "_i": "int32", "_at": "int64"},
    )


def covering(
    value: ir.TimestampValue | ir.IntegerValue, dates: list[dt.datetime], days: int = 0
) -> ir.IntegerValue:
    """How many of the sorted ``dates``, each moved ``days`` earlier, are at or before ``value``
    (a timestamp, or epoch seconds): a CASE over the dates.

    With no ``days``, the position of the first date after ``value`` (so also of the interval
    ``[previous as-of, as-of)`` holding it); with a look-back of ``days``, one past the last
    date whose look-back holds ``value``; with ``-days``, the first date ``value`` is not at
    least ``days`` after.
    """
    moved = [d - dt.timedelta(days=days) for d in dates]
    if value.type().is_timestamp():
        limits: list[object] = [ibis.literal(d, type="timestamp") for d in moved]
    else:
        limits = [epoch(d) for d in moved]
    return ibis.cases(
        *((value < limit, i) for i, limit in enumerate(limits)), else_=len(dates)
    ).cast("int32")


def at_dates(
    table: ir.Table, first: ir.IntegerValue, end: ir.IntegerValue | int, at: ir.Table
) -> ir.Table:
    """Each row of ``table`` once per as-of date of ``at`` (:func:`dates_table`) at the
    positions ``first`` up to ``end``, with its ``as_of`` and ``_at``.

    The dates a row belongs to are consecutive, so each row lists their positions and joins
    them on equality. An inequality join on the dates (``T - w <= timestamp < T``) sorts the
    rows (DuckDB's piecewise merge join): six dates of features at a million customers took
    76-82 s that way, 56-62 s this way.
    """
    return table.mutate(_i=ibis.range(first, end).unnest()).join(at, "_i").drop("_i")


def epoch(when: dt.datetime) -> int:
    """Seconds since 1970 of a naive UTC datetime."""
    return calendar.timegm(when.timetuple())
