"""Churn definitions turned into labels for (customer_id, as_of).

* ``inactivity`` — population: customers with an activity event in ``[T - horizon, T)`` (still
  active at T), or with ``population = "all"`` any activity before T (lapsed customers too);
  churned when they have no activity event in ``[T, T + horizon)``.
* ``subscription`` — population: customers with a subscription active just before T
  (``start_date < T`` and ``end_date`` empty or ``>= T``); churned when no subscription is active
  just before ``T + horizon`` (every subscription ended in ``[T, T + horizon)``, none restarted).
* ``labels`` — the ``labels`` table's ``churned`` flag; the as-of date plays no part.

Labels use only rows in ``[T - horizon, T + horizon)`` (with ``population = "all"``, every row
before ``T + horizon``); a label is complete only when the data
reaches ``T + horizon`` (see :func:`label_window_end`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnguard.asof import at_dates, covering, dates_table, normalize_as_of
from churnguard.config import ChurnConfig
from churnguard.contract import Dataset
from churnguard.errors import ConfigError


def build_labels(
    dataset: Dataset,
    *,
    as_of: Sequence[dt.date | dt.datetime | str],
    churn: ChurnConfig = ChurnConfig(),
) -> ir.Table:
    """Labels under ``churn.definition`` for each as-of date.

    Returns
    -------
    ibis Table with ``customer_id``, ``as_of`` and ``churned`` (0/1), one row per customer in
    the population at each date.
    """
    dates = normalize_as_of(as_of)
    at = dates_table(dates)
    as_of_table = at.select("as_of")
    days = churn.horizon_days
    horizon = ibis.interval(days=days)
    if churn.definition == "labels":
        labels = dataset.table("labels")
        return labels.cross_join(as_of_table).select("customer_id", "as_of", "churned")
    if churn.definition == "subscription":
        subs = dataset.table("subscriptions")
        # started before the end of the date's horizon
        j = at_dates(subs, covering(subs.start_date, dates, -days), len(dates), at)
        grouped = j.group_by(["customer_id", "as_of"]).aggregate(
            _before=_active(j, j.as_of).cast("int64").max(),
            _after=_active(j, j.as_of + horizon).cast("int64").max(),
        )
        grouped = grouped.filter(grouped._before == 1)
        return grouped.select("customer_id", "as_of", churned=(1 - grouped._after).cast("int64"))
    if churn.definition == "inactivity" and churn.population == "all":
        events = _activity(dataset, churn)
        first = events.group_by("customer_id").aggregate(_first=events.timestamp.min())
        grid = first.cross_join(as_of_table).filter(lambda t: t._first < t.as_of)
        ev = events.filter(
            events.timestamp >= dates[0],
            events.timestamp < dates[-1] + dt.timedelta(days=days),
        )
        start, end = covering(ev.timestamp, dates, -days), covering(ev.timestamp, dates)
        j = at_dates(ev, start, end, at)  # as_of <= timestamp < as_of + horizon
        after = j.group_by(["customer_id", "as_of"]).aggregate(_after=j.count())
        grid = grid.left_join(after, ["customer_id", "as_of"])
        return grid.select("customer_id", "as_of", churned=grid._after.isnull().cast("int64"))
    if churn.definition == "inactivity":
        events = _activity(dataset, churn)
        ev = events.filter(
            events.timestamp >= dates[0] - dt.timedelta(days=days),
            events.timestamp < dates[-1] + dt.timedelta(days=days),
        )
        start, end = covering(ev.timestamp, dates, -days), covering(ev.timestamp, dates, days)
        j = at_dates(ev, start, end, at)  # as_of - horizon <= timestamp < as_of + horizon
        grouped = j.group_by(["customer_id", "as_of"]).aggregate(
            _before=j.timestamp.count(where=j.timestamp < j.as_of),
            _after=j.timestamp.count(where=j.timestamp >= j.as_of),
        )
        grouped = grouped.filter(grouped._before > 0)
        return grouped.select("customer_id", "as_of", churned=(grouped._after == 0).cast("int64"))
    raise ConfigError(f"unknown churn definition {churn.definition!r}")


def label_window_end(dataset: Dataset, *, churn: ChurnConfig) -> dt.datetime | None:
    """The last as-of date whose label window the data covers (None in ``labels`` mode)."""
    last, _ = data_end(dataset, churn=churn)
    return None if last is None else last - dt.timedelta(days=churn.horizon_days)


def data_end(dataset: Dataset, *, churn: ChurnConfig) -> tuple[dt.datetime | None, int]:
    """Where the data the churn definition reads really ends, and how many rows lie beyond.

    Rows dated more than a horizon after every earlier row (a 2099 typo, a placeholder date)
    are not data about the period: counting them as the end would let label windows run past
    the real data. They are left out of the end and counted. (None, 0) in ``labels`` mode.
    """
    if churn.definition == "labels":
        return None, 0
    table, columns = (
        ("subscriptions", ["start_date", "end_date"])
        if churn.definition == "subscription"
        else ("events", ["timestamp"])
    )
    t = dataset.table(table)
    per_day = []
    for column in columns:
        dated = t.filter(t[column].notnull())
        per_day.append(
            dated.group_by(day=dated[column].date())
            .aggregate(rows=dated.count(), last=dated[column].max())
            .to_pandas()
        )
    days = pd.concat(per_day).groupby("day").agg(rows=("rows", "sum"), last=("last", "max"))
    days = days.sort_index()
    if days.empty:
        return None, 0
    gap = dt.timedelta(days=churn.horizon_days)
    kept = len(days)
    while kept > 1 and days.index[kept - 1] - days.index[kept - 2] > gap:
        kept -= 1
    last = pd.Timestamp(days["last"].iloc[kept - 1]).tz_localize(None).to_pydatetime()
    return last, int(days["rows"].iloc[kept:].sum())


def far_rows_warning(rows: int, end: dt.datetime | None) -> str:
    """The warning for rows :func:`data_end` left out."""
    return (
        f"{rows:,} rows are dated more than a horizon after the rest of the data, which ends "
        f"{end.date() if end else 'nowhere'}: they are left out of where the data ends (typos?)"
    )


def latest(dataset: Dataset, columns: dict[str, list[str]]) -> dt.datetime | None:
    """The latest time in the given date columns of the given tables (None when all are empty)."""
    found = []
    for table, names in columns.items():
        if not dataset.has(table):
            continue
        t = dataset.table(table)
        row = t.aggregate(**{n: t[n].max() for n in names}).to_pandas().iloc[0]
        found += [pd.Timestamp(v).tz_localize(None) for v in row if not pd.isna(v)]
    return max(found).to_pydatetime() if found else None


def population(
    dataset: Dataset,
    *,
    as_of: dt.date | dt.datetime | str,
    churn: ChurnConfig = ChurnConfig(),
) -> ir.Table:
    """The customers a churn score is meant for at ``as_of``: who could churn under the
    definition. ``subscription``: an active subscription just before T; ``inactivity``: an
    activity event in ``[T - horizon, T)`` (with ``population = "all"``, any before T);
    ``labels``: every customer. One ``customer_id`` each.
    """
    (when,) = normalize_as_of([as_of])
    if churn.definition == "labels":
        return dataset.table("customers").select("customer_id")
    if churn.definition == "subscription":
        subs = dataset.table("subscriptions")
        return subs.filter(_active(subs, when)).select("customer_id").distinct()
    events = _activity(dataset, churn)
    recent = events.filter(events.timestamp < when)
    if churn.population == "active":
        recent = recent.filter(recent.timestamp >= when - dt.timedelta(days=churn.horizon_days))
    return recent.select("customer_id").distinct()


def _active(subs: ir.Table, at: ir.TimestampValue | dt.datetime) -> ir.BooleanValue:
    """A subscription row is active just before ``at``: started before it, not ended by then."""
    return (subs.start_date < at) & (subs.end_date.isnull() | (subs.end_date >= at))


def _activity(dataset: Dataset, churn: ChurnConfig) -> ir.Table:
    """The events that count as activity under ``churn.activity_events`` (empty: all)."""
    events = dataset.table("events")
    if churn.activity_events:
        events = events.filter(events.event_type.isin(churn.activity_events))
    return events
