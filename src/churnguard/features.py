"""Point-in-time feature definitions: one row per (customer_id, as_of), each with a description.

Every feature for as-of date ``T`` uses only rows with a timestamp before ``T``; windows are
half-open, ``T - w <= timestamp < T``. Definitions are Ibis expressions, so the same code runs on
DuckDB (the default engine) and on Spark. Several as-of dates are built in one pass:

* window features (counts, spend, active days, gaps) join each event of the longest window to
  the as-of dates whose window contains it, reading a customer's events in time order for the
  gaps; trends also count the events of the window before, grouped by the dates they count at;
* history features (recency, latest survey answers, first activity) aggregate each event once into
  the interval between consecutive as-of dates; each date then combines the intervals before it;
* subscription features read the (small) subscriptions table per as-of date.

As-of values are dates (midnights), so every window holds whole days.

Static attributes of ``customers`` describe the customer *now*, not at ``T``: a plan, segment or
status column updated after ``T`` leaks the future into training. Exclude such columns in
``[features] exclude``. Columns that look like the outcome itself (``churned``, ``cancel_date``,
``end_date`` …) are refused unless listed in ``[features] allow_leaky``.

The population at ``T`` is every customer who signed up before ``T`` (or, without a
``signup_date``, was first seen in events or subscriptions before ``T``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from churnguard.asof import AsOf, at_dates, covering, dates_table, epoch, normalize_as_of
from churnguard.bgnbd import BGNBD, fit_bgnbd
from churnguard.config import LEAKY_NAME_PARTS, FeaturesConfig
from churnguard.contract import Dataset
from churnguard.engine import Ranges, Restrict, between
from churnguard.errors import ConfigError, DataContractError, LeakageError

Stat = Literal[
    "count",
    "trend",
    "recency",
    "amount",
    "mean_amount",
    "score",
    "days",
    "gap",
    "flag",
    "category",
    "number",
    "total",
    "spread",
    "probability",
]
#: Days per bitmask block when counting days with activity (:func:`_lifetime`): the bits of a
#: signed 64-bit integer below its sign bit (each bit, 2**k, is exact as a double too).
_BLOCK_DAYS = 63


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its column name, what it means in a sentence, and how to read its value."""

    name: str
    description: str
    stat: Stat
    kind: Literal["numeric", "categorical"] = "numeric"
    event_type: str | None = None
    window_days: int | None = None


@dataclass(frozen=True)
class FeaturePlan:
    """The features a dataset supports under a config: derived once, used to build and describe."""

    features: tuple[Feature, ...] = field(repr=False, compare=False)
    event_types: tuple[str, ...]
    activity_events: tuple[str, ...]
    value_events: tuple[str, ...]
    survey_events: tuple[str, ...]
    attributes: tuple[str, ...]
    windows: tuple[int, ...]

    @property
    def specs(self) -> tuple[FeatureSpec, ...]:
        return tuple(f.spec for f in self.features)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def descriptions(self) -> dict[str, str]:
        return {s.name: s.description for s in self.specs}

    def to_json(self) -> str:
        """Name, description, statistic and kind of each feature: what a feature file carries."""
        return json.dumps(
            [
                {"name": s.name, "description": s.description, "stat": s.stat, "kind": s.kind}
                for s in self.specs
            ]
        )


def plan_features(
    dataset: Dataset,
    *,
    config: FeaturesConfig = FeaturesConfig(),
    activity_events: Sequence[str] = (),
    horizon_days: int = 30,
) -> FeaturePlan:
    """Decide which features the dataset supports: event types, value-carrying types, surveys.

    The longest window is at least the churn horizon (``horizon_days`` is added to the windows
    when it is longer), so some count looks back as far as the label looks ahead.

    Raises
    ------
    LeakageError
        A customer attribute looks like the churn outcome and is neither excluded nor allowed.
    ConfigError
        An activity event type or one named in ``[features] event_types`` does not occur in
        the data, or more event types than ``max_event_types`` would become features.
    """
    event_types: tuple[str, ...] = ()
    value_events: tuple[str, ...] = ()
    valued: set[str] = set()
    if dataset.has("events"):
        kinds = dataset.event_types
        if kinds is None:  # too many types for validation to list them
            ev = dataset.table("events")
            counted = ev.group_by("event_type").aggregate(values=ev.value.count(), rows=ev.count())
            kinds = counted.order_by("event_type").to_pandas()
        rows = _kept_event_types(kinds, config)
        event_types = tuple(rows["event_type"])
        valued = set(rows.loc[rows["values"] > 0, "event_type"])
        value_events = tuple(
            t for t in event_types if t in valued and t not in config.survey_events
        )
    unknown = sorted(set(activity_events) - set(event_types))
    if unknown and event_types:
        raise ConfigError(
            f"churn.activity_events names {unknown[0]!r}, which is not an event type in the data "
            f"(found: {', '.join(event_types)})"
        )
    activity = tuple(activity_events) or event_types
    surveys = tuple(t for t in event_types if t in config.survey_events and t in valued)
    attributes = _attributes(dataset, config)
    windows = config.windows
    if horizon_days > max(windows):
        windows = (*windows, horizon_days)
    features = _catalogue(
        windows=windows,
        horizon=horizon_days,
        event_types=event_types,
        value_events=value_events,
        surveys=surveys,
        subscriptions=dataset.has("subscriptions"),
        attributes={name: dataset.attributes[name] for name in attributes},
    )
    _check_unique([f.spec for f in features], attributes, dataset.tables["customers"].path)
    return FeaturePlan(
        tuple(features),
        event_types,
        activity,
        value_events,
        surveys,
        attributes,
        windows,
    )


def _kept_event_types(kinds: pd.DataFrame, config: FeaturesConfig) -> pd.DataFrame:
    """The event types (rows of ``kinds``) that become features: those named in
    ``config.event_types``, else all of them, at most ``config.max_event_types``."""
    if config.event_types:
        unknown = sorted(set(config.event_types) - set(kinds["event_type"]))
        if unknown:
            raise ConfigError(
                f"features.event_types names {unknown[0]!r}, which is not an event type in the "
                "data"
            )
        kinds = kinds[kinds["event_type"].isin(config.event_types)]
    if len(kinds) > config.max_event_types:
        common = kinds.sort_values(["rows", "event_type"], ascending=[False, True])["event_type"]
        shown = ", ".join(common.head(10))
        raise ConfigError(
            f"the data has {len(kinds):,} event types, more than features.max_event_types = "
            f"{config.max_event_types} (each becomes several features); name the ones to keep "
            f"in [features] event_types (the most frequent: {shown}, …) or raise the limit"
        )
    return kinds


def build_features(
    dataset: Dataset,
    *,
    as_of: Sequence[AsOf],
    config: FeaturesConfig = FeaturesConfig(),
    activity_events: Sequence[str] = (),
    plan: FeaturePlan | None = None,
    customers_between: tuple[str | None, str | None] | None = None,
    fits: Fits | None = None,
) -> ir.Table:
    """Point-in-time features for every customer in the population at each as-of date.

    Parameters
    ----------
    dataset : a validated dataset (:func:`churnguard.load_dataset`).
    as_of : one or more as-of dates; each feature at ``T`` sees only rows before ``T``.
    config : windows, survey events and attribute exclusions.
    activity_events : event types that count as activity (active days, gaps); all by default.
    plan : the features to build, from :func:`plan_features` (derived from the data if None).
    customers_between : ``(low, high)`` keeps customers with ``low <= customer_id < high``
        (None: unbounded), so that a large population can be built in bounded-memory pieces.
    fits : the BG/NBD model at each date, from :func:`fit_bgnbd_at` (fitted here, on the
        customers built, if None: pass it when building in pieces).

    Returns
    -------
    ibis Table, lazy, with columns ``customer_id``, ``as_of`` and one column per
    :class:`FeatureSpec` of :func:`plan_features`, one row per (customer_id, as_of), ordered by
    customer_id then as_of.
    """
    dates = normalize_as_of(as_of)
    plan = plan or plan_features(dataset, config=config, activity_events=activity_events)
    low, high = customers_between or (None, None)
    return _features(dataset, dates, plan, lambda table: between(table, low, high), fits)


def _features(
    dataset: Dataset,
    dates: list[dt.datetime],
    plan: FeaturePlan,
    restrict: Restrict,
    fits: Fits | None,
) -> ir.Table:
    """:func:`build_features` of the customers each table keeps through ``restrict``."""
    at = dates_table(dates)
    as_of_table = at.select("as_of")
    tables = _tables(dataset, restrict)
    history = _history(tables["events"], at, dates, plan) if plan.event_types else None
    result = _population(tables["customers"], as_of_table, history, tables.get("subscriptions"))
    parts = []
    if plan.event_types:
        active = _activity_events(dataset, tables["events"], plan)
        every = active is tables["events"]  # then windows and activity share a pass
        parts.append(_windows(tables["events"], at, dates, plan, activity=every))
        if not every:
            parts.append(_activity(active, at, dates, plan))
        parts.append(_lifetime(active, at, dates))
        if fits is None:
            fits = fit_bgnbd_at(dataset, dates, plan, tables)
        parts.append(_bgnbd_parameters(dates, fits))
    if "subscriptions" in tables:
        parts.append(_subscriptions(tables["subscriptions"], at, dates, plan))
    for part in parts:
        keys = [k for k in ("customer_id", "as_of") if k in part.columns]
        result = result.left_join(part, keys).drop(*(f"{k}_right" for k in keys))
    if plan.attributes:
        customers = tables["customers"]
        attrs = customers.select(
            "customer_id", **{f"_x{i}": customers[a] for i, a in enumerate(plan.attributes)}
        )
        result = result.left_join(attrs, "customer_id").drop("customer_id_right")
    return result.select("customer_id", "as_of", **_final_columns(result, plan)).order_by(
        ["customer_id", "as_of"]
    )


def feature_pieces(dataset: Dataset, dates: list[dt.datetime], plan: FeaturePlan) -> Ranges:
    """The features of ``plan`` at ``dates`` as one query over consecutive ranges of
    customer_id, as many as the engine needs to build each within its memory (one where it
    needs no split); read one after another, they are the whole table in order."""
    count = dataset.engine.pieces(
        dataset.tables["customers"].rows * len(dates), len(plan.specs) + 2
    )
    bounds = _customer_bounds(dataset, count) if count > 1 else []
    if not bounds:
        return Ranges.whole(build_features(dataset, as_of=dates, plan=plan))
    # the BG/NBD model at each date is fitted on every customer, not on each range's
    fits = fit_bgnbd_at(dataset, dates, plan)
    return Ranges(
        lambda restrict: _features(dataset, dates, plan, restrict, fits),
        tuple(zip([None, *bounds], [*bounds, None], strict=True)),
    )


def _customer_bounds(dataset: Dataset, count: int) -> list[str]:
    """Up to ``count - 1`` customer ids splitting the customers into ranges of about equal
    size."""
    customers = dataset.table("customers").select("customer_id")
    ranked = customers.mutate(_n=ibis.row_number().over(order_by="customer_id"))
    rows = dataset.tables["customers"].rows
    positions = sorted({rows * i // count for i in range(1, count)})
    picked = ranked.filter(ranked._n.isin(positions)).order_by("_n").to_pandas()
    return sorted(set(picked["customer_id"]))


#: BG/NBD models per as-of date (None where the data cannot fit one).
Fits = dict[dt.datetime, BGNBD | None]
#: Customers a BG/NBD fit reads at most; beyond, a fixed MD5 sample of about this many stands
#: for them (four parameters barely move, and the fit reads a fraction of the events).
FIT_CUSTOMERS = 50_000
#: Active customers a BG/NBD fit needs at least (and two with a repeat day).
MIN_FIT_CUSTOMERS = 20


def fit_bgnbd_at(
    dataset: Dataset,
    as_of: Sequence[AsOf],
    plan: FeaturePlan,
    tables: dict[str, ir.Table] | None = None,
) -> Fits:
    """The BG/NBD model of activity fitted at each as-of date on every customer's activity
    before it (whole days), for :func:`build_features`; on ``tables`` (a piece of the
    dataset's) when given. None at every date of a dataset too small to fit one."""
    dates = normalize_as_of(as_of)
    if not plan.event_types or dataset.tables["customers"].rows < MIN_FIT_CUSTOMERS:
        return dict.fromkeys(dates)
    events = _fit_sample(dataset, tables or _tables(dataset, _every_customer))
    active = _activity_events(dataset, events, plan)
    return _fitted(active, dates_table(dates), dates)


def _every_customer(table: ir.Table) -> ir.Table:
    """The restriction of a build in one piece: none."""
    return table


def _tables(dataset: Dataset, restrict: Restrict) -> dict[str, ir.Table]:
    return {
        name: restrict(dataset.table(name))
        for name in ("customers", "events", "subscriptions")
        if dataset.has(name)
    }


def _fit_sample(dataset: Dataset, tables: dict[str, ir.Table]) -> ir.Table:
    """The events a BG/NBD fit reads: every customer's, or beyond :data:`FIT_CUSTOMERS` those
    of a fixed sample of customers (:func:`sampled`, the same on every engine)."""
    events, count = tables["events"], dataset.tables["customers"].rows
    if count <= FIT_CUSTOMERS:
        return events
    customers = tables["customers"]
    chosen = customers.filter(sampled(customers.customer_id, FIT_CUSTOMERS / count, 0))
    return events.semi_join(chosen.select("customer_id"), "customer_id")


def sampled(customer_id: ir.StringValue, fraction: float, seed: int) -> ir.BooleanValue:
    """Whether a customer is in the ``fraction`` sample of ``seed``: the MD5 of seed and id,
    read as a number in [0, 1), is below ``fraction``. The same on every engine and run."""
    digits = 8
    threshold = f"{min(int(fraction * 16**digits), 16**digits - 1):0{digits}x}"
    digest = (ibis.literal(f"{seed}:") + customer_id).hexdigest("md5")
    return digest.substr(0, digits) < threshold


def _fitted(active: ir.Table, at: ir.Table, dates: list[dt.datetime]) -> Fits:
    """Fit a BG/NBD at each date on the :func:`_lifetime` summaries of the customers active
    before it in the activity events ``active`` (grouped, so the engine sends one row per
    distinct summary)."""
    lifetime = _lifetime(active, at, dates)
    summaries = (
        lifetime.group_by(["as_of", "_x", "_t_x", "_T"])
        .aggregate(_n=lifetime.count())
        .order_by(["as_of", "_x", "_t_x", "_T"])
        .to_pandas()
    )

    def fit(when: dt.datetime) -> BGNBD | None:
        rows = summaries[summaries["as_of"] == pd.Timestamp(when)]
        weights = rows["_n"].to_numpy(float)
        if (rows["_x"] > 0).sum() < 2 or weights.sum() < MIN_FIT_CUSTOMERS:
            return None  # too little activity to say how customers buy and drop out
        return fit_bgnbd(rows["_x"], rows["_t_x"], rows["_T"], weights)

    # scipy's special functions release the GIL: the dates' fits share the cores
    with ThreadPoolExecutor(min(len(dates), os.cpu_count() or 1)) as pool:
        return dict(zip(dates, pool.map(fit, dates), strict=True))


def _bgnbd_parameters(dates: list[dt.datetime], fits: Fits) -> ir.Table:
    """The fitted parameters per as-of date, as a table to join (empty where none fitted)."""
    columns: dict[str, list[object]] = {"as_of": list(dates)}
    for name in ("r", "alpha", "a", "b"):
        columns[f"_bg_{name}"] = [
            None if fits.get(d) is None else getattr(fits[d], name) for d in dates
        ]
    schema = {"as_of": "timestamp", **{k: "float64" for k in columns if k != "as_of"}}
    return ibis.memtable(columns, schema=schema)


def _days(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    """Fractional days from ``earlier`` to ``later``."""
    return (later.epoch_seconds() - earlier.epoch_seconds()).cast("float64") / 86_400.0


def _interval(days: int) -> ir.IntervalScalar:
    return ibis.interval(days=days)


#: Seconds in a day.
_DAY = 86_400


def _windows(
    events: ir.Table,
    at: ir.Table,
    dates: list[dt.datetime],
    plan: FeaturePlan,
    *,
    activity: bool = False,
) -> ir.Table:
    """Per (customer, as-of), for each event type ``k`` of the plan: ``_e{k}_n{days}`` events in
    the last ``days`` (each window and twice each, for trends), and ``_e{k}_v{w}`` and
    ``_e{k}_m{w}``, the sum and number of values in the last ``w`` days; with ``activity``
    (every event counts as activity), the aggregates of :func:`_activity_aggregates` as well.

    One aggregation over all types: each event in the widest window is read, joined to its
    as-of dates and grouped once (one narrow aggregation per type read and joined the events
    once per type, a fifth slower at a million customers; a pass of its own for activity read
    and joined the same events again). Events older than the widest window count only towards
    the trends' earlier windows: they are counted per customer, type and the as-of dates they
    count at, and those counts joined to the dates (each such event joined to its dates cost
    as much as the widest window's sums at six monthly dates). Memory stays bounded because
    a large build runs in ranges of customers (:func:`churnguard.feature_files.write_features`).
    Conditions compare small integers (type code, age in seconds), never strings or intervals.
    """
    widest = max(plan.windows)
    lookback = 2 * widest
    codes = {t: i for i, t in enumerate(plan.event_types)}
    # Per-event work happens once, before the join multiplies events by as-of dates.
    ev = events.filter(
        events.timestamp >= dates[0] - dt.timedelta(days=lookback),
        events.timestamp < dates[-1],
    ).select(
        "customer_id",
        "value",
        _type=_.event_type.cases(*codes.items(), else_=-1).cast("int16"),
        _seconds=_.timestamp.epoch_seconds(),
    )

    def count(condition: ir.BooleanValue) -> ir.FloatingValue:
        # float sums keep aggregate states at 8 bytes (integer sums widen to 128 bits)
        return condition.cast("float64").sum()

    # T - w <= timestamp < T  <=>  0 < age <= w days (age > 0 by the join)
    bounds = sorted({*plan.windows, *(2 * w for w in plan.windows)})
    near = ev.filter(ev._seconds >= epoch(dates[0] - dt.timedelta(days=widest)))
    j = _joined(_in_order(near) if activity else near, at, dates, 0, widest)
    aggregates: dict[str, ir.Value] = {}
    for t, k in codes.items():
        of = j._type == k
        surveyed = t in plan.survey_events
        for b in plan.windows if surveyed else bounds:
            if b <= widest:
                aggregates[f"_e{k}_n{b}"] = count(of & (j._age <= b * _DAY))
        for w in plan.windows if t in plan.value_events else (widest,) if surveyed else ():
            valued = of & j.value.notnull() & (j._age <= w * _DAY)
            aggregates[f"_e{k}_v{w}"] = ibis.ifelse(valued, j.value, 0.0).sum()
            aggregates[f"_e{k}_m{w}"] = count(valued)
    active = _activity_aggregates(j, plan) if activity else {}
    recent = j.group_by(["customer_id", "as_of"]).aggregate(**aggregates, **active)
    older = [b for b in bounds if b > widest]
    counted = [k for t, k in codes.items() if t not in plan.survey_events]
    if not older or not counted:
        return recent
    # Events older than the widest window count only towards the trends' earlier windows: at a
    # run of as-of dates, from the first they are older than the widest window at to the last
    # each bound still holds them at. They are counted per customer, type and run, and the
    # counts joined to the dates, not each event.
    o = ev.filter(ev._seconds < epoch(dates[-1] - dt.timedelta(days=widest)))
    ends = {f"_to{b}": covering(o._seconds, dates, b) for b in older}
    groups = o.group_by(
        [
            "customer_id",
            covering(o._seconds, dates, widest).name("_from"),
            *(end.name(name) for name, end in ends.items()),
        ]
    ).aggregate(**{f"_c{k}": count(o._type == k) for k in counted})
    g = at_dates(groups, groups._from, groups[f"_to{older[-1]}"], at)

    def held(k: int, b: int) -> ir.FloatingValue:
        """The group's events of type ``k`` where they are at most ``b`` days before the
        as-of date (all of them within the farthest bound, which the join keeps)."""
        if b == older[-1]:
            return g[f"_c{k}"]
        end = g[f"_to{b}"]
        until = ibis.cases(*((end == i, epoch(d)) for i, d in enumerate(dates)), else_=None)
        return ibis.ifelse(until.isnull() | (g._at < until), g[f"_c{k}"], 0.0)

    before = g.group_by(["customer_id", "as_of"]).aggregate(
        **{f"_o{k}_n{b}": held(k, b).sum() for k in counted for b in older}
    )
    both = recent.outer_join(before, ["customer_id", "as_of"])
    columns: dict[str, ir.Value] = {
        key: both[key].coalesce(both[f"{key}_right"]) for key in ("customer_id", "as_of")
    }
    columns |= {name: both[name].fill_null(0) for name in aggregates}
    columns |= {name: both[name] for name in active}  # null, as a pass of its own leaves it
    columns |= {
        f"_e{k}_n{b}": both[f"_e{k}_n{widest}"].fill_null(0) + both[f"_o{k}_n{b}"].fill_null(0)
        for k in counted
        for b in older
    }
    return both.select(**columns)


def _joined(
    events: ir.Table, at: ir.Table, dates: list[dt.datetime], nearest: int, farthest: int
) -> ir.Table:
    """Each of ``events`` (with ``_seconds``, epoch seconds) with the as-of dates it is more
    than ``nearest`` and at most ``farthest`` days before, with ``_at`` and its ``_age`` in
    seconds at each."""
    start = covering(events._seconds, dates, nearest)
    j = at_dates(events, start, covering(events._seconds, dates, farthest), at)
    return j.mutate(_age=j._at - j._seconds)


def _in_order(events: ir.Table) -> ir.Table:
    """``events`` (with ``_seconds``) with ``_day_start``, the start of its day, and
    ``_previous``, that of the customer's previous event (null for the first)."""
    day_start = ((events._seconds / _DAY).floor() * _DAY).cast("int64")
    events = events.mutate(_day_start=day_start)
    by_customer = ibis.window(group_by="customer_id", order_by="_seconds")
    return events.mutate(_previous=events._day_start.lag().over(by_customer))


def _activity_events(dataset: Dataset, events: ir.Table, plan: FeaturePlan) -> ir.Table:
    """The rows of ``events`` that count as activity: all of them (``events`` itself) where
    every event type of the data does (the default), since a filter on a list of types costs
    DuckDB a join of every event."""
    kinds = dataset.event_types
    if kinds is not None and set(kinds["event_type"]) <= set(plan.activity_events):
        return events
    return events.filter(events.event_type.isin(plan.activity_events))


def _activity(
    active: ir.Table, at: ir.Table, dates: list[dt.datetime], plan: FeaturePlan
) -> ir.Table:
    """The aggregates of :func:`_activity_aggregates` from the activity events ``active``,
    where they are not every event (otherwise :func:`_windows` computes them)."""
    widest = max(plan.windows)
    act = active.filter(
        active.timestamp >= dates[0] - dt.timedelta(days=widest), active.timestamp < dates[-1]
    )
    act = _in_order(act.select("customer_id", _seconds=act.timestamp.epoch_seconds()))
    j = _joined(act, at, dates, 0, widest)
    return j.group_by(["customer_id", "as_of"]).aggregate(**_activity_aggregates(j, plan))


def _activity_aggregates(j: ir.Table, plan: FeaturePlan) -> dict[str, ir.Value]:
    """Per (customer, as-of) of ``j``, activity events in the widest window joined to their
    as-of dates (:func:`_joined` of :func:`_in_order`): ``_a_days{w}`` days with activity in
    the last ``w`` days; ``_a_n``, ``_a_first``, ``_a_last``: activities, first and last (epoch
    seconds) in the widest; ``_a_gaps``, ``_a_gap_sum``, ``_a_gap_sq``: how many gaps in days
    between consecutive days with activity lie wholly in the widest window, their sum and sum
    of squares.

    Each activity event is read once, in time order per customer: the first event of a day
    (the one whose previous event fell on an earlier day) stands for that day, and the gap is
    measured from the previous event's day. That sorts the events once instead of grouping them
    by day and sorting the days; as-of dates are midnights, so a day lies wholly inside or
    outside each window.
    """
    widest = max(plan.windows)
    age = j._at - j._day_start  # whole days, as a number of seconds
    first = j._previous.isnull() | (j._previous != j._day_start)  # the day's first event
    inside = first & (j._previous >= j._at - widest * _DAY)  # the day before is in the window
    gap = (j._day_start - j._previous).cast("float64") / _DAY
    return {
        **{f"_a_days{w}": (first & (age <= w * _DAY)).cast("int64").sum() for w in plan.windows},
        "_a_n": j.count(),
        "_a_first": j._seconds.min(),
        "_a_last": j._seconds.max(),
        "_a_gaps": inside.cast("float64").sum(),
        "_a_gap_sum": ibis.ifelse(inside, gap, 0.0).sum(),
        "_a_gap_sq": ibis.ifelse(inside, gap * gap, 0.0).sum(),
    }


def _history(
    events: ir.Table, at: ir.Table, dates: list[dt.datetime], plan: FeaturePlan
) -> ir.Table:
    """Per (customer, as-of), over all history before it: ``_h_first`` (the first event),
    ``_h_last`` (the latest activity), and per event type ``k`` of the plan ``_h{k}_last`` (its
    latest event) and, for surveys, ``_h{k}_score`` (the latest answer).

    Each event is aggregated once, into the interval ``[previous as-of, as-of)`` it falls in;
    each as-of date then combines the intervals up to it. Rows only for customers with events.
    """
    ev = events.filter(events.timestamp < dates[-1])
    j = ev.mutate(_bucket=covering(ev.timestamp, dates))
    codes = {t: i for i, t in enumerate(plan.event_types)}
    j = j.mutate(_type=j.event_type.cases(*codes.items(), else_=-1).cast("int16"))

    def latest(condition: ir.BooleanValue) -> ir.TimestampValue:
        return ibis.ifelse(condition, j.timestamp, ibis.null()).max()

    surveys = {codes[s] for s in plan.survey_events}
    has_value = j.value.notnull()
    activity = j._type.isin([codes[t] for t in plan.activity_events])
    aggs: dict[str, ir.Value] = {
        "_h_first": j.timestamp.min(),
        "_h_last": latest(activity),
    }
    for k in codes.values():
        aggs[f"_h{k}_last"] = latest(j._type == k)
    for k in surveys:
        aggs[f"_h{k}_answer"] = _max_by(j.value, j.timestamp, where=(j._type == k) & has_value)
    spent = [codes[t] for t in plan.value_events]
    for k in spent:
        valued = (j._type == k) & has_value
        aggs[f"_h{k}_n"] = valued.cast("float64").sum()
        aggs[f"_h{k}_v"] = ibis.ifelse(valued, j.value, 0.0).sum()
    per_bucket = j.group_by(["customer_id", "_bucket"]).aggregate(**aggs)

    h = at_dates(per_bucket, per_bucket._bucket, len(dates), at)
    carried: dict[str, ir.Value] = {
        "_h_first": h._h_first.min(),
        "_h_last": h._h_last.max(),
    }
    for k in codes.values():
        carried[f"_h{k}_last"] = h[f"_h{k}_last"].max()
    for k in surveys:
        # intervals are in time order: the latest one with an answer holds the latest answer
        answer = h[f"_h{k}_answer"]
        carried[f"_h{k}_score"] = _max_by(answer, h[f"_h{k}_last"], where=answer.notnull())
    for k in spent:
        carried[f"_h{k}_n"] = h[f"_h{k}_n"].sum()
        carried[f"_h{k}_v"] = h[f"_h{k}_v"].sum()
    return h.group_by(["customer_id", "as_of"]).aggregate(**carried)


def _lifetime(active: ir.Table, at: ir.Table, dates: list[dt.datetime]) -> ir.Table:
    """Per (customer, as-of), over all history before it, from the days with activity:
    ``_l_days`` (how many), ``_l_first_ts`` (the first activity), and the BG/NBD summary in whole
    days, ``_x`` (repeat days), ``_t_x`` (first to last) and ``_T`` (first to the as-of date).
    Rows only for customers with activity before the date.

    Days with activity are counted without a row per customer and day: each event sets the
    bit of its day in a 63-day block's mask, the masks are OR-ed per (customer, interval between
    consecutive as-of dates, block), and the set bits counted. That groups a customer's events
    into a few blocks instead of hundreds of days (the costliest step of a build before). Each
    date then combines the intervals before it, as :func:`_history` does. (The spread of the
    gaps is measured over the widest window, by :func:`_activity_aggregates`: over the whole
    history it would need every customer's days in order.)
    """
    act = active.filter(active.timestamp < dates[-1])
    act = act.mutate(_day=(act.timestamp.epoch_seconds() / _DAY).floor().cast("int64"))
    # as-of dates are midnights, so a day lies wholly inside one interval
    j = act.mutate(_bucket=covering(act.timestamp, dates))
    offset = (j._day % _BLOCK_DAYS + _BLOCK_DAYS) % _BLOCK_DAYS  # in [0, 63) before 1970 too
    block = ((j._day - offset) / _BLOCK_DAYS).cast("int64").name("_block")
    bit = ibis.literal(1).cast("int64") << offset  # 64-bit on Spark too, as a cast literal
    blocks = j.group_by(["customer_id", "_bucket", block]).aggregate(
        _mask=_bit_or(bit), _first=j._day.min(), _last=j._day.max(), _ts=j.timestamp.min()
    )
    per_bucket = blocks.group_by(["customer_id", "_bucket"]).aggregate(
        _n=_bit_count(blocks._mask).sum(),
        _first=blocks._first.min(),
        _last=blocks._last.max(),
        _ts=blocks._ts.min(),
    )
    g = at_dates(per_bucket, per_bucket._bucket, len(dates), at)
    out = g.group_by(["customer_id", "as_of"]).aggregate(
        _l_days=g._n.sum(),
        _l_first=g._first.min(),
        _l_last=g._last.max(),
        _l_first_ts=g._ts.min(),
    )
    today = (out.as_of.epoch_seconds() / _DAY).floor().cast("int64")
    return out.mutate(
        _x=out._l_days - 1, _t_x=out._l_last - out._l_first, _T=today - out._l_first
    ).drop("_l_first", "_l_last")


@ibis.udf.agg.builtin(name="bit_or")
def _bit_or(mask: int) -> int:
    """The OR of 64-bit masks (ibis compiles its own ``bit_or`` for DuckDB, not for Spark)."""


@ibis.udf.agg.builtin(name="max_by")
def _max_by(value: float, key: dt.datetime) -> float:
    """``value`` at the greatest ``key``: DuckDB's ``arg_max``, Spark's ``max_by``. Pass only
    rows with a value (``where``): DuckDB skips null values, Spark keeps them. Ibis's
    ``argmax`` runs on DuckDB as an ordered ``first``, which builds a sort key for every row."""


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(mask: int) -> int:
    """The set bits of a 64-bit mask (DuckDB's and Spark SQL's ``bit_count``)."""


def _population(
    customers: ir.Table, as_of: ir.Table, history: ir.Table | None, subs: ir.Table | None
) -> ir.Table:
    """Customers who exist before each as-of date, with ``_p_tenure`` and the history.

    A customer exists from ``signup_date``, or without one from the first event or
    subscription start seen before the as-of date. In snapshot data (no events, no
    subscriptions) a customer without a signup date is always in the population.
    """
    grid = customers.select("customer_id", "signup_date").cross_join(as_of)
    first_seen = []
    if history is not None:
        grid = grid.left_join(history, ["customer_id", "as_of"]).drop(
            "customer_id_right", "as_of_right"
        )
        first_seen.append(grid._h_first)
    if subs is not None:
        first_sub = subs.group_by("customer_id").aggregate(_p_first_sub=subs.start_date.min())
        grid = grid.left_join(first_sub, "customer_id").drop("customer_id_right")
        first_seen.append(
            ibis.ifelse(grid._p_first_sub < grid.as_of, grid._p_first_sub, ibis.null())
        )
    start = grid.signup_date
    if first_seen:
        start = start.coalesce(ibis.least(*first_seen) if len(first_seen) > 1 else first_seen[0])
    grid = grid.mutate(_p_tenure=_days(grid.as_of, start))
    if first_seen:
        return grid.filter(start < grid.as_of)
    # snapshot data: only a signup date, if any, can say a customer did not exist yet
    return grid.filter(start.isnull() | (start < grid.as_of))


def _subscriptions(
    subs: ir.Table, at: ir.Table, dates: list[dt.datetime], plan: FeaturePlan
) -> ir.Table:
    """Per (customer, as-of): ``_s_active``, ``_s_mrr`` and ``_s_plan`` of the active
    subscriptions, ``_s_first`` (the first start), and plan changes and downgrades in the
    widest window (``_s_changes``, ``_s_downgrades``)."""
    widest = max(plan.windows)
    by_customer = ibis.window(group_by="customer_id", order_by=["start_date", "mrr", "plan"])
    subs = subs.mutate(
        _prev_mrr=subs.mrr.lag().over(by_customer),
        _nth=ibis.row_number().over(by_customer),
    )
    j = at_dates(subs, covering(subs.start_date, dates), len(dates), at)
    active = j.end_date.isnull() | (j.end_date >= j.as_of)
    recent = j.start_date >= j.as_of - _interval(widest)
    grouped = j.group_by(["customer_id", "as_of"]).aggregate(
        _s_active=active.cast("int64").max(),
        _s_mrr=j.mrr.sum(where=active),
        _s_plan=j.plan.argmax(j.start_date, where=active),
        _s_first=j.start_date.min(),
        _s_changes=j.start_date.count(where=recent & (j._nth > 0)),
        _s_downgrades=j.start_date.count(where=recent & (j.mrr < j._prev_mrr)),
    )
    return grouped.mutate(_s_mrr=grouped._s_mrr.fill_null(0.0))


def _final_columns(table: ir.Table, plan: FeaturePlan) -> dict[str, ir.Value]:
    """Feature columns in plan order; counts of absent customers are 0, not missing."""
    out: dict[str, ir.Value] = {}
    for feature in plan.features:
        spec, column = feature.spec, feature.value(table)
        if spec.stat in ("count", "amount", "total") or spec.name == "subscription_active":
            column = column.fill_null(0)
        if spec.kind == "numeric":
            column = column.cast("float64")
        out[spec.name] = column
    return out


@dataclass(frozen=True)
class Feature:
    """A feature as defined: its spec, and its value read from the building table (the
    population joined to the aggregates of :func:`build_features`, columns starting ``_``)."""

    spec: FeatureSpec
    value: Callable[[ir.Table], ir.Value]


def _column(name: str) -> Callable[[ir.Table], ir.Value]:
    return lambda t: t[name]


def _ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    return ibis.ifelse(denominator > 0, numerator.cast("float64") / denominator, ibis.null())


def _since(column: str) -> Callable[[ir.Table], ir.Value]:
    """Days from the time in ``column`` to the as-of date."""
    return lambda t: _days(t.as_of, t[column])


def _catalogue(
    *,
    windows: tuple[int, ...],
    horizon: int,
    event_types: tuple[str, ...],
    value_events: tuple[str, ...],
    surveys: tuple[str, ...],
    subscriptions: bool,
    attributes: dict[str, Literal["numeric", "categorical"]],
) -> list[Feature]:
    """Every feature a dataset supports, in plan order: each one's name, description and
    value in one place. The aggregates the values read are built by :func:`build_features`."""
    widest = max(windows)
    out = [
        Feature(
            FeatureSpec("tenure_days", "days since the customer signed up", "days"),
            _column("_p_tenure"),
        )
    ]
    for k, t in enumerate(event_types):
        out += _event_type_features(k, t, windows, valued=t in value_events, survey=t in surveys)
    if event_types:
        out.append(
            Feature(
                FeatureSpec(
                    "days_since_last_activity",
                    "days since the last activity of any kind",
                    "recency",
                ),
                _since("_h_last"),
            )
        )
        out += [
            Feature(
                FeatureSpec(
                    f"active_days_{w}d",
                    f"days with activity in the last {w} days",
                    "count",
                    window_days=w,
                ),
                _column(f"_a_days{w}"),
            )
            for w in windows
        ]
        out.append(
            Feature(
                FeatureSpec(
                    f"activity_gap_mean_{widest}d",
                    f"average days between activities in the last {widest} days",
                    "gap",
                    window_days=widest,
                ),
                lambda t: ibis.ifelse(
                    t._a_n > 1,
                    (t._a_last - t._a_first).cast("float64") / _DAY / (t._a_n - 1),
                    ibis.null(),
                ),
            )
        )
        out.append(
            Feature(
                FeatureSpec(
                    f"activity_gap_sd_{widest}d",
                    "spread (standard deviation) of the days between days with activity in "
                    f"the last {widest} days",
                    "spread",
                    window_days=widest,
                ),
                _gap_spread,
            )
        )
        out += _lifetime_features(horizon)
    if subscriptions:
        out += _subscription_features(widest)
    for i, (name, kind) in enumerate(attributes.items()):
        spec = FeatureSpec(
            name,
            f"customer attribute {name} (as it is now, not at the as-of date)",
            "category" if kind == "categorical" else "number",
            kind,
        )
        out.append(Feature(spec, _column(f"_x{i}")))
    return out


def _event_type_features(
    k: int, t: str, windows: tuple[int, ...], *, valued: bool, survey: bool
) -> list[Feature]:
    """Counts and trends per window, spend, survey answers and recency of event type ``t``, the
    ``k``-th of the plan.

    They read the aggregates of :func:`_windows` and :func:`_history`, named by ``k`` (never by
    the type, which comes from the data): ``_e{k}_n{days}`` (events in the last ``days``),
    ``_e{k}_v{w}`` and ``_e{k}_m{w}`` (sum and number of values in the last ``w`` days),
    ``_h{k}_last`` and ``_h{k}_score`` (the latest event and survey answer before the as-of
    date).
    """
    label, widest, e = t.replace("_", " "), max(windows), f"_e{k}"
    out = []
    for w in windows:
        out.append(
            Feature(
                FeatureSpec(
                    f"{t}_count_{w}d",
                    f"{label} events in the last {w} days",
                    "count",
                    event_type=t,
                    window_days=w,
                ),
                _column(f"{e}_n{w}"),
            )
        )
        if not survey:
            current, both = f"{e}_n{w}", f"{e}_n{2 * w}"
            out.append(
                Feature(
                    FeatureSpec(
                        f"{t}_trend_{w}d",
                        f"change in {label} events, last {w} days against the {w} days before "
                        "(fraction; empty when there were none before)",
                        "trend",
                        event_type=t,
                        window_days=w,
                    ),
                    lambda tb, c=current, b=both: _ratio(tb[c] - (tb[b] - tb[c]), tb[b] - tb[c]),
                )
            )
    if valued:
        for w in windows:
            out.append(
                Feature(
                    FeatureSpec(
                        f"{t}_value_sum_{w}d",
                        f"total {label} value in the last {w} days",
                        "amount",
                        event_type=t,
                        window_days=w,
                    ),
                    _column(f"{e}_v{w}"),
                )
            )
            out.append(
                Feature(
                    FeatureSpec(
                        f"{t}_value_mean_{w}d",
                        f"average {label} value in the last {w} days",
                        "mean_amount",
                        event_type=t,
                        window_days=w,
                    ),
                    lambda tb, v=f"{e}_v{w}", m=f"{e}_m{w}": _ratio(tb[v], tb[m]),
                )
            )
    if valued:
        out += [
            Feature(
                FeatureSpec(
                    f"{t}_count_total", f"{label} events since the first", "total", event_type=t
                ),
                _column(f"_h{k}_n"),
            ),
            Feature(
                FeatureSpec(
                    f"{t}_value_sum_total",
                    f"total {label} value since the first",
                    "total",
                    event_type=t,
                ),
                _column(f"_h{k}_v"),
            ),
            Feature(
                FeatureSpec(
                    f"{t}_value_mean_total",
                    f"average {label} value since the first",
                    "mean_amount",
                    event_type=t,
                ),
                lambda tb, v=f"_h{k}_v", m=f"_h{k}_n": _ratio(tb[v], tb[m]),
            ),
        ]
    if survey:
        out.append(
            Feature(
                FeatureSpec(
                    f"last_{t}_score", f"latest {label.upper()} answer", "score", event_type=t
                ),
                _column(f"_h{k}_score"),
            )
        )
        out.append(
            Feature(
                FeatureSpec(
                    f"{t}_score_mean_{widest}d",
                    f"average {label.upper()} answer in the last {widest} days",
                    "score",
                    event_type=t,
                    window_days=widest,
                ),
                lambda tb, v=f"{e}_v{widest}", m=f"{e}_m{widest}": _ratio(tb[v], tb[m]),
            )
        )
    out.append(
        Feature(
            FeatureSpec(
                f"days_since_last_{t}",
                f"days since the last {label} event",
                "recency",
                event_type=t,
            ),
            _since(f"_h{k}_last"),
        )
    )
    return out


def _lifetime_features(horizon: int) -> list[Feature]:
    """Activity over the customer's whole history (the summary a BG/NBD model reads: active
    days, first and last) and the BG/NBD model's chances."""
    return [
        Feature(
            FeatureSpec("active_days_total", "days with activity since the first", "total"),
            _column("_l_days"),
        ),
        Feature(
            FeatureSpec("days_since_first_activity", "days since the first activity", "days"),
            _since("_l_first_ts"),
        ),
        Feature(
            FeatureSpec(
                "activity_gap_mean_total",
                "average days between days with activity, over the whole history",
                "gap",
            ),
            lambda t: _ratio(t._t_x, t._x),
        ),
        Feature(
            FeatureSpec(
                "bgnbd_p_alive",
                "chance the customer has not silently dropped out (BG/NBD, fitted at the date)",
                "probability",
            ),
            lambda t: _bgnbd(t, horizon)[0],
        ),
        Feature(
            FeatureSpec(
                f"bgnbd_p_active_{horizon}d",
                f"chance of activity in the next {horizon} days (BG/NBD, fitted at the date)",
                "probability",
                window_days=horizon,
            ),
            lambda t: _bgnbd(t, horizon)[1],
        ),
    ]


def _gap_spread(t: ir.Table) -> ir.FloatingValue:
    """The standard deviation of the gaps in the widest window, from their count, sum and sum
    of squares; empty with fewer than two gaps."""
    mean = t._a_gap_sum / t._a_gaps
    variance = t._a_gap_sq / t._a_gaps - mean * mean
    return ibis.ifelse(t._a_gaps > 1, ibis.greatest(variance, 0.0).sqrt(), ibis.null())


def _bgnbd(t: ir.Table, horizon: int) -> tuple[ir.FloatingValue, ir.FloatingValue]:
    """P(alive) and P(activity in the next ``horizon`` days) of each row under its date's
    fitted BG/NBD (see :class:`churnguard.bgnbd.BGNBD`), as engine expressions."""
    r, alpha, a, b = t._bg_r, t._bg_alpha, t._bg_a, t._bg_b
    x, t_x, T = (t[c].cast("float64") for c in ("_x", "_t_x", "_T"))
    rx = r + x
    log_odds = (
        a.ln()
        - ibis.greatest(b + x - 1, 1e-12).ln()
        + rx * ((alpha + T).ln() - (alpha + t_x).ln())
    )
    # a customer never active, or a date with no fit, has no chance to give
    alive = ibis.cases(
        (r.isnull() | x.isnull(), ibis.null("float64")),
        (x > 0, 1.0 / (1.0 + log_odds.clip(-50.0, 50.0).exp())),
        else_=1.0,
    )
    silent = (rx * ((alpha + T).ln() - (alpha + T + horizon).ln())).exp()
    return alive, alive * (1.0 - silent)


def _subscription_features(widest: int) -> list[Feature]:
    """Subscription state at the as-of date, from the aggregates of :func:`_subscriptions`."""
    return [
        Feature(
            FeatureSpec("subscription_active", "has an active subscription", "flag"),
            _column("_s_active"),
        ),
        Feature(
            FeatureSpec("mrr", "monthly recurring revenue of active subscriptions", "amount"),
            _column("_s_mrr"),
        ),
        Feature(
            FeatureSpec("plan", "plan of the active subscription", "category", "categorical"),
            _column("_s_plan"),
        ),
        Feature(
            FeatureSpec(
                "subscription_tenure_days", "days since the first subscription started", "days"
            ),
            _since("_s_first"),
        ),
        Feature(
            FeatureSpec(
                f"plan_change_count_{widest}d",
                f"plan changes in the last {widest} days",
                "count",
                window_days=widest,
            ),
            _column("_s_changes"),
        ),
        Feature(
            FeatureSpec(
                f"downgrade_count_{widest}d",
                f"downgrades to a cheaper plan in the last {widest} days",
                "count",
                window_days=widest,
            ),
            _column("_s_downgrades"),
        ),
    ]


def _attributes(dataset: Dataset, config: FeaturesConfig) -> tuple[str, ...]:
    """Static attributes to use; refuses outcome-looking names unless explicitly allowed."""
    path = dataset.tables["customers"].path
    unknown = sorted(set(config.exclude + config.allow_leaky) - set(dataset.attributes))
    if unknown:
        raise ConfigError(
            f"features.exclude/allow_leaky name {unknown[0]!r}, which is not a column of {path}"
        )
    chosen = []
    for name in dataset.attributes:
        if name in config.exclude:
            continue
        lowered = name.lower()
        if any(part in lowered for part in LEAKY_NAME_PARTS) and name not in config.allow_leaky:
            raise LeakageError(
                f"{path}, column '{name}': looks like the churn outcome, and an outcome used as a "
                "feature makes the model look perfect and useless; add it to [features] exclude, "
                "or to allow_leaky if it really is known before the as-of date"
            )
        refused = sorted(set(name) & set(_NOT_IN_FEATURE_NAMES))
        if refused:
            raise DataContractError(
                f"{path}, column {name!r}: holds {refused[0]!r}, which LightGBM does not take in "
                "a feature name; rename the column, or add it to [features] exclude"
            )
        chosen.append(name)
    return tuple(chosen)


#: Characters LightGBM refuses in a feature name (the JSON ones; quotes never pass the contract).
_NOT_IN_FEATURE_NAMES = ",:[]{}"


def _check_unique(specs: Sequence[FeatureSpec], attributes: Sequence[str], path: object) -> None:
    """Refuse two features of one name: an attribute named like a built feature, or an event
    type whose features take another's name (LightGBM writes a space as ``_``, so ``a b`` and
    ``a_b`` are one name to it)."""
    seen: dict[str, FeatureSpec] = {}
    for spec in specs:
        key = spec.name.replace(" ", "_")
        if key not in seen:
            seen[key] = spec
            continue
        pair = (seen[key], spec)
        if any(s.name in attributes for s in pair):
            name = next(s.name for s in pair if s.name in attributes)
            raise DataContractError(
                f"{path}, column {name!r}: has the name of another feature; rename the "
                "column, or add it to [features] exclude"
            )
        kind = next((s.event_type for s in pair if s.event_type), None)
        raise DataContractError(
            f"events, column 'event_type': the type {kind!r} makes the feature "
            f"{spec.name!r}, which another feature already is; rename the event type"
        )
