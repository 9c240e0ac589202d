"""Retention KPIs over a period, per month or quarter inside it, and monthly cohort retention.

Definitions, for a period ``[start, end)`` and the config's churn definition:

* **at start**: customers in the churn population at ``start`` (subscription: a subscription
  active just before ``start``; inactivity: activity in the ``horizon_days`` before it).
* **lost**: customers at start who churned during the period (subscription: no subscription
  active at ``end``; inactivity: no activity in the ``horizon_days`` before ``end``, i.e. out of
  the population at end, so churn and retention add up to 100 % whatever the period's length).
* **at end** / **new**: customers in the population at ``end``; new ones were not there at start.
* churn rate = lost ÷ at start × 100; retention rate = (at end − new) ÷ at start × 100.
* repeat purchase rate: among customers with a purchase in the period, the share with two or more.
* CLV = average purchase value × purchases per customer per year × average lifespan in years,
  over the customers at start: their purchases in the period ÷ the customer-years they spent
  in the population during it (how many of them were in it at each month's start), and a
  lifespan of 1 ÷ the period's churn rate made annual (compounded: constant churn). Counted
  per customer-year rather than per buyer in the period, and annualised by compounding, it
  does not depend on the period's length: a month and a year of a steady business agree.
* NPS = % promoters (answers 9–10) − % detractors (0–6) among the period's NPS answers.
* CSAT = satisfied answers (4 or 5 on the 1–5 scale) ÷ all CSAT answers × 100.
* MRR = Σ ``mrr`` of subscriptions active just before ``end``.

A KPI whose inputs are absent (no surveys, no purchases, no subscriptions) is reported as
unavailable with the reason, never as zero.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ibis
import pandas as pd

from churnguard.asof import normalize_as_of
from churnguard.config import ChurnConfig
from churnguard.contract import Dataset
from churnguard.errors import ConfigError
from churnguard.io import atomic_path
from churnguard.labels import build_labels

KPI_NAMES: tuple[str, ...] = (
    "churn_rate",
    "retention_rate",
    "repeat_purchase_rate",
    "clv",
    "nps",
    "csat",
    "mrr",
)
#: ``kpis.csv`` headers that say the unit: the rates are percentages (NPS is points).
PERCENT_COLUMNS = {
    name: f"{name}_pct"
    for name in ("churn_rate", "retention_rate", "repeat_purchase_rate", "csat")
}
#: Customers who answered each survey in the period (beside NPS and CSAT).
RESPONDENTS = ("nps_respondents", "csat_respondents")
Frequency = Literal["month", "quarter"]


@dataclass(frozen=True)
class EventNames:
    """Which event types carry purchases and survey answers."""

    purchase: str = "purchase"
    nps: str = "nps"
    csat: str = "csat"


@dataclass
class PeriodKpis:
    """The KPIs of one period; ``unavailable`` maps a KPI name to why it has no value."""

    start: dt.date
    end: dt.date
    values: dict[str, float | None]
    unavailable: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class KpiReport:
    """KPIs for the whole period and for each month or quarter inside it."""

    total: PeriodKpis
    breakdown: list[PeriodKpis]
    freq: Frequency

    def to_json(self) -> dict[str, object]:
        """Whole-period KPIs as top-level keys (rates in percent), then the breakdown."""
        out: dict[str, object] = {name: self.total.values[name] for name in KPI_NAMES}
        out["period"] = {"start": self.total.start.isoformat(), "end": self.total.end.isoformat()}
        out["unavailable"] = self.total.unavailable
        out["counts"] = self.total.counts
        out["freq"] = self.freq
        out["breakdown"] = [
            {
                "start": p.start.isoformat(),
                "end": p.end.isoformat(),
                **p.values,
                "unavailable": p.unavailable,
                "counts": p.counts,
            }
            for p in self.breakdown
        ]
        return out

    def labelled(self) -> list[tuple[str, PeriodKpis]]:
        """("2024-12-01 to 2025-12-01", whole period), then ("2025-01", month) or
        ("2025-01-01", quarter) pairs."""
        width = 7 if self.freq == "month" else 10
        whole = f"{self.total.start} to {self.total.end}"
        return [(whole, self.total)] + [(p.start.isoformat()[:width], p) for p in self.breakdown]

    def to_frame(self) -> pd.DataFrame:
        """One row for the whole period, then one per month or quarter; each survey score
        with the number of customers who answered."""
        rows = [
            {
                "period": label,
                "start": p.start,
                "end": p.end,
                **p.values,
                **{c: p.counts.get(c, 0) for c in RESPONDENTS},
            }
            for label, p in self.labelled()
        ]
        return pd.DataFrame(rows, columns=["period", "start", "end", *KPI_NAMES, *RESPONDENTS])


def compute_kpis(
    dataset: Dataset,
    *,
    start: dt.date | str,
    end: dt.date | str,
    churn: ChurnConfig = ChurnConfig(),
    freq: Frequency = "month",
    events: EventNames = EventNames(),
) -> KpiReport:
    """Retention KPIs for ``[start, end)`` and for each month or quarter inside it.

    Raises
    ------
    ConfigError
        ``end`` is not after ``start``, or ``freq`` is not month or quarter.
    """
    first, last = (normalize_as_of([day])[0].date() for day in (start, end))
    if first >= last:
        raise ConfigError(f"the KPI period needs an end after its start, got {start} to {end}")
    if freq not in ("month", "quarter"):
        raise ConfigError(f"freq must be month or quarter, got {freq!r}")
    span = _span(dataset)
    total = _period(dataset, first, last, churn, events)
    bounds = _period_starts(first, last, freq)
    breakdown = [
        _period(dataset, a, b, churn, events) if _overlaps(span, a, b) else _outside(a, b)
        for a, b in itertools.pairwise(bounds)
    ]
    return KpiReport(total=total, breakdown=breakdown, freq=freq)


def _span(dataset: Dataset) -> tuple[dt.date, dt.date] | None:
    """The first and last day any event or subscription date falls on (None without any)."""
    days = []
    dated = {"events": ["timestamp"], "subscriptions": ["start_date", "end_date"]}
    for name, columns in dated.items():
        if dataset.has(name):
            t = dataset.table(name)
            aggregates = {f"{c}_{f}": getattr(t[c], f)() for c in columns for f in ("min", "max")}
            row = t.aggregate(**aggregates).to_pandas().iloc[0]
            days += [pd.Timestamp(v).date() for v in row if not pd.isna(v)]
    return (min(days), max(days)) if days else None


def _overlaps(span: tuple[dt.date, dt.date] | None, start: dt.date, end: dt.date) -> bool:
    return span is not None and start <= span[1] and end > span[0]


def _outside(start: dt.date, end: dt.date) -> PeriodKpis:
    """A period with no dated row in it: every KPI unavailable, found without a query, so a
    long span of empty months costs nothing."""
    reason = "no event or subscription date falls in the period"
    return PeriodKpis(start, end, dict.fromkeys(KPI_NAMES), dict.fromkeys(KPI_NAMES, reason))


def _period_starts(first: dt.date, last: dt.date, freq: Frequency) -> list[dt.date]:
    step = 1 if freq == "month" else 3
    month = first.month - (first.month - 1) % step
    cursor = dt.date(first.year, month, 1)
    starts = [first]
    while True:
        cursor = _add_months(cursor, step)
        if cursor >= last:
            return [*starts, last]
        starts.append(cursor)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _period(
    dataset: Dataset, start: dt.date, end: dt.date, churn: ChurnConfig, names: EventNames
) -> PeriodKpis:
    values: dict[str, float | None] = dict.fromkeys(KPI_NAMES)
    report = PeriodKpis(start, end, values)
    churn_fraction, starters = _churn_and_retention(dataset, start, end, churn, report)

    if dataset.has("events"):
        events = dataset.table("events")
        in_period = events.filter(events.timestamp >= start, events.timestamp < end)
        stay = _Stay(dataset, start, end, churn, starters, churn_fraction)
        _purchases(in_period, names.purchase, stay, report)
        _surveys(in_period, names, report)
    else:
        for name in ("repeat_purchase_rate", "clv", "nps", "csat"):
            report.unavailable[name] = "the dataset has no events table"

    if dataset.has("subscriptions"):
        subs = dataset.table("subscriptions")
        active = subs.filter(
            subs.start_date < end, subs.end_date.isnull() | (subs.end_date >= end)
        )
        values["mrr"] = float(active.mrr.sum().fill_null(0).execute())
    else:
        report.unavailable["mrr"] = "the dataset has no subscriptions table"
    return report


@dataclass
class _Stay:
    """How long the customers at a period's start stayed in it, for CLV."""

    dataset: Dataset
    start: dt.date
    end: dt.date
    churn: ChurnConfig
    starters: set[str]
    churn_fraction: float | None

    def months(self) -> list[tuple[dt.date, float]]:
        """Each month's first day in the period (the period's start first) and the share of
        that calendar month the period holds (1 for a whole month, whatever its days)."""
        bounds = _period_starts(self.start, self.end, "month")
        return [(a, (b - a).days / _month_days(a)) for a, b in itertools.pairwise(bounds)]

    def years(self) -> float:
        return sum(share for _, share in self.months()) / 12

    def customer_years(self) -> float:
        """Customer-years the starters spent in the population: how many were in it at each
        month's first day, times that month's share."""
        months = self.months()
        present = build_labels(self.dataset, as_of=[a for a, _ in months], churn=self.churn)
        frame = present.select("customer_id", "as_of").to_pandas()
        frame = frame[frame["customer_id"].isin(self.starters)]
        counts = frame.groupby(frame["as_of"].dt.date).size()
        return sum(share * counts.get(day, 0) for day, share in months) / 12


def _month_days(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _churn_and_retention(
    dataset: Dataset, start: dt.date, end: dt.date, churn: ChurnConfig, report: PeriodKpis
) -> tuple[float | None, set[str]]:
    """Fill churn and retention rates; return the period's churn fraction and the customers at
    its start (for CLV)."""
    if churn.definition == "labels":
        reason = "the labels definition has no dates to measure a period by"
        report.unavailable["churn_rate"] = report.unavailable["retention_rate"] = reason
        return None, set()
    at_end = build_labels(dataset, as_of=[end], churn=churn).to_pandas()
    if churn.definition == "inactivity":  # the population at start: active in the horizon before
        at_start = build_labels(dataset, as_of=[start], churn=churn).to_pandas()
        lost = len(set(at_start["customer_id"]) - set(at_end["customer_id"]))
    else:
        over_period = dataclasses.replace(churn, horizon_days=(end - start).days)
        at_start = build_labels(dataset, as_of=[start], churn=over_period).to_pandas()
        lost = int(at_start["churned"].sum())
    n_start = len(at_start)
    new = len(set(at_end["customer_id"]) - set(at_start["customer_id"]))
    report.counts.update(at_start=n_start, lost=lost, at_end=len(at_end), new=new)
    if not n_start:
        reason = "no customers in the population at the start of the period"
        report.unavailable["churn_rate"] = report.unavailable["retention_rate"] = reason
        return None, set()
    report.values["churn_rate"] = 100.0 * lost / n_start
    report.values["retention_rate"] = 100.0 * (len(at_end) - new) / n_start
    return lost / n_start, set(at_start["customer_id"])


def _purchases(events: ibis.Table, purchase: str, stay: _Stay, report: PeriodKpis) -> None:
    bought = events.filter(events.event_type == purchase)
    per_customer = (
        bought.group_by("customer_id")
        .aggregate(n=bought.count(), spent=bought.value.sum())
        .to_pandas()
    )
    if per_customer.empty:
        reason = f"no {purchase} events in the period"
        report.unavailable["repeat_purchase_rate"] = report.unavailable["clv"] = reason
        return
    buyers = len(per_customer)
    report.counts.update(buyers=buyers, returning=int((per_customer["n"] >= 2).sum()))
    report.values["repeat_purchase_rate"] = 100.0 * report.counts["returning"] / buyers
    theirs = per_customer[per_customer["customer_id"].isin(stay.starters)]
    purchases, spent, churned = int(theirs["n"].sum()), theirs["spent"].sum(), stay.churn_fraction
    if churned is None or churned == 0 or not purchases or pd.isna(spent):
        report.unavailable["clv"] = (
            "no churn rate to give a lifespan"
            if churned is None
            else "no churn in the period, so no finite lifespan"
            if churned == 0
            else "no purchase amounts of the customers at the start of the period"
        )
        return
    per_year = purchases / stay.customer_years()
    lifespan = 1 / (1 - (1 - churned) ** (1 / stay.years()))  # years, at the annual churn
    report.values["clv"] = float(spent / purchases * per_year * lifespan)


def _surveys(events: ibis.Table, names: EventNames, report: PeriodKpis) -> None:
    answers = events.filter(
        events.event_type.isin([names.nps, names.csat]), events.value.notnull()
    )
    counts = (
        answers.group_by("event_type")
        .aggregate(
            n=answers.count(),
            respondents=answers.customer_id.nunique(),
            high=(
                (answers.value >= 9) & (answers.event_type == names.nps)
                | (answers.value >= 4) & (answers.event_type == names.csat)
            )
            .cast("int64")
            .sum(),
            low=(answers.value <= 6).cast("int64").sum(),
        )
        .to_pandas()
        .set_index("event_type")
    )
    for name, key in ((names.nps, "nps_respondents"), (names.csat, "csat_respondents")):
        report.counts[key] = int(counts["respondents"].get(name, 0))
    if names.nps in counts.index:
        n, promoters, detractors = counts.loc[names.nps, ["n", "high", "low"]]
        report.values["nps"] = 100.0 * (promoters - detractors) / n
    else:
        report.unavailable["nps"] = f"no {names.nps} answers in the period"
    if names.csat in counts.index:
        n, satisfied = counts.loc[names.csat, ["n", "high"]]
        report.values["csat"] = 100.0 * satisfied / n
    else:
        report.unavailable["csat"] = f"no {names.csat} answers in the period"


def cohort_retention(
    dataset: Dataset, *, churn: ChurnConfig = ChurnConfig(), until: dt.date | str
) -> pd.DataFrame:
    """Share of each signup-month cohort still in the churn population 1, 2, 3 … months on.

    Rows are cohorts (signup month), columns ``customers``, ``before_data`` and the months since
    signup; a cell is empty when that month lies after ``until``. ``before_data`` flags a cohort
    that signed up before the first dated row of the data: its early months show customers as
    staying only because nothing was recorded yet. Needs ``signup_date`` in customers.
    """
    customers = dataset.table("customers")
    if churn.definition == "labels":
        raise ConfigError("cohort retention needs dated data; the labels definition has none")
    signups = customers.filter(customers.signup_date.notnull(), customers.signup_date < until)
    frame = signups.select("customer_id", "signup_date").to_pandas()
    if frame.empty:
        raise ConfigError("cohort retention needs customers with a signup_date before the end")
    limit = normalize_as_of([until])[0].date()
    frame["cohort"] = frame["signup_date"].dt.to_period("M").dt.start_time.dt.date
    first = min(frame["cohort"])
    months = []
    cursor = _add_months(first, 1)
    while cursor <= limit:
        months.append(cursor)
        cursor = _add_months(cursor, 1)
    if not months:
        raise ConfigError(f"cohort retention needs at least one month between {first} and {limit}")
    active = build_labels(dataset, as_of=months, churn=churn).select("customer_id", "as_of")
    present = active.to_pandas()
    present["as_of"] = present["as_of"].dt.date
    merged = frame.merge(present, on="customer_id", how="inner")
    merged["age"] = [
        (a.year - c.year) * 12 + a.month - c.month
        for a, c in zip(merged.as_of, merged.cohort, strict=True)
    ]
    merged = merged[merged["age"] >= 1]
    sizes = frame.groupby("cohort").size()
    kept = merged.groupby(["cohort", "age"]).size().unstack(fill_value=0)
    table = kept.reindex(index=sizes.index, fill_value=0).div(sizes, axis=0)
    for cohort in table.index:  # months after `until` are unknown, not zero
        for age in table.columns:
            if _add_months(cohort, int(age)) > limit:
                table.loc[cohort, age] = float("nan")
    table.insert(0, "customers", sizes)
    span = _span(dataset)
    began = dt.date(span[0].year, span[0].month, 1) if span else first
    table.insert(1, "before_data", [cohort < began for cohort in table.index])
    table.index = [c.strftime("%Y-%m") for c in table.index]
    table.index.name = "cohort"
    table.columns = ["customers", "before_data", *[f"month_{int(a)}" for a in table.columns[2:]]]
    return table


def write_kpis(report: KpiReport, cohorts: pd.DataFrame | None, out: Path) -> dict[str, Path]:
    """Write ``kpis.csv``, ``kpis.json`` and, with cohorts, ``cohorts.csv`` and two charts."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"kpis.csv": out / "kpis.csv", "kpis.json": out / "kpis.json"}
    with atomic_path(files["kpis.csv"]) as tmp:  # every share in percent, as the header says
        report.to_frame().rename(columns=PERCENT_COLUMNS).to_csv(tmp, index=False)
    with atomic_path(files["kpis.json"]) as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=2, allow_nan=False))
    if cohorts is not None:
        from churnguard.charts import cohort_heatmap, retention_curve, save_png

        files["cohorts.csv"] = out / "cohorts.csv"
        files["cohort_retention.png"] = out / "cohort_retention.png"
        files["retention_curve.png"] = out / "retention_curve.png"
        with atomic_path(files["cohorts.csv"]) as tmp:
            months = [c for c in cohorts.columns if c.startswith("month_")]
            in_percent = cohorts.assign(**{m: 100 * cohorts[m] for m in months})
            in_percent.rename(columns={m: f"{m}_pct" for m in months}).to_csv(tmp)
        save_png(cohort_heatmap(cohorts), files["cohort_retention.png"])
        save_png(retention_curve(cohorts), files["retention_curve.png"])
    return files


def retention_report(
    dataset: Dataset,
    *,
    start: dt.date | str,
    end: dt.date | str,
    churn: ChurnConfig = ChurnConfig(),
    freq: Frequency = "month",
) -> tuple[KpiReport, pd.DataFrame | None]:
    """The KPIs of a period and, when the data has dates to build them from (a signup_date
    and a dated churn definition), the cohort retention up to ``end``."""
    report = compute_kpis(dataset, start=start, end=end, churn=churn, freq=freq)
    dated = churn.definition != "labels" and "signup_date" in dataset.tables["customers"].columns
    return report, cohort_retention(dataset, churn=churn, until=end) if dated else None
