"""A simulated subscription business whose churn is caused by behaviour (demo data and its truth).

Each customer carries a latent *engagement* that drifts day by day. Engagement drives logins and
purchases; low engagement brings support tickets, complaints when tickets stay open, low NPS (0–10)
and CSAT (1–5) answers, and plan downgrades; some customers' cards fail at billing. Every day an
alive customer churns with a hazard that rises as engagement falls, with open tickets, a detractor
NPS answer, a recent failed payment and a plan price above the customer's willingness to pay.
After churning a customer stops acting and the subscription ends.

With the defaults the business looks like a mid-sized SaaS: monthly churn of active subscribers
between 2 % and 8 %, logins the most common event (60–85 % of events), purchases 5–25 %, support
tickets 1–8 %, surveys (NPS + CSAT) 1–12 %, failed payments under 3 %, and about 50 events per
customer over two years. The tests hold the generator to those ranges.

Outputs, under ``out``: ``customers``, ``events``, ``subscriptions`` and ``labels`` (the data
contract, see :mod:`churnguard.contract`) and ``truth``: every alive customer's true daily churn
hazard on a weekly grid (``customer_id, date, hazard``), the latent ``engagement`` it came from
(no table of the contract shows it; it measures what a model cannot see) and the customer's
``churn_date`` (empty if the customer never churned). ``labels`` is a snapshot: customers with
an active subscription ``label_horizon_days`` before the last day, flagged if they churned
after it.

Customers are simulated in fixed-size chunks, each from its own seeded generator, and each chunk is
written as it finishes: memory stays flat up to millions of customers, and a seed always gives the
same files.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churnguard.asof import normalize_as_of
from churnguard.campaigns import Campaigns, campaign_days
from churnguard.config import MAX_SEED, CampaignsConfig, load_effects
from churnguard.engine import sql_ident
from churnguard.errors import ConfigError

CHUNK_CUSTOMERS = 20_000
PLANS = ("basic", "standard", "premium")
PLAN_MRR = np.array([19.0, 49.0, 99.0])
COUNTRIES = ("DE", "ES", "FR", "GB", "NL", "US")
CHANNELS = ("organic", "paid_search", "partner", "referral", "social")
EVENT_TYPES = (
    "login",
    "purchase",
    "support_ticket",
    "complaint",
    "nps",
    "csat",
    "payment_failed",
)
SECONDS_PER_DAY = 86_400

SCHEMAS = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("signup_date", pa.date32()),
            ("country", pa.string()),
            ("acquisition_channel", pa.string()),
            ("company_size", pa.int32()),
        ]
    ),
    "events": pa.schema(
        [
            ("customer_id", pa.string()),
            ("timestamp", pa.timestamp("s")),
            ("event_type", pa.string()),
            ("value", pa.float64()),
        ]
    ),
    "subscriptions": pa.schema(
        [
            ("customer_id", pa.string()),
            ("start_date", pa.date32()),
            ("end_date", pa.date32()),
            ("plan", pa.string()),
            ("mrr", pa.float64()),
        ]
    ),
    "labels": pa.schema([("customer_id", pa.string()), ("churned", pa.int8())]),
    "truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("date", pa.date32()),
            ("hazard", pa.float32()),
            ("engagement", pa.float32()),
            ("churn_date", pa.date32()),
        ]
    ),
    "treatments": pa.schema(
        [
            ("customer_id", pa.string()),
            ("as_of", pa.date32()),
            ("intervention", pa.string()),
            ("group", pa.string()),
            ("propensity", pa.float64()),
            ("run_id", pa.string()),
        ]
    ),
    "truth_uplift": pa.schema(
        [
            ("customer_id", pa.string()),
            ("as_of", pa.date32()),
            ("intervention", pa.string()),
            ("churn_without", pa.float64()),
            ("churn_with", pa.float64()),
        ]
    ),
}
#: Written only with campaigns.
CAMPAIGN_TABLES = ("treatments", "truth_uplift")


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate` wrote."""

    out: Path
    customers: int
    events: int
    churned: int
    start: dt.date
    end: dt.date
    files: dict[str, Path]


def check_request(
    customers: int, days: int, seed: int, fmt: str, start: dt.date, horizon_days: int
) -> None:
    """Refuse a simulation that cannot be written: too small, an unknown format, a seed
    LightGBM cannot take, or dates past what the data contract reads."""
    if customers < 1 or days < 60:
        raise ConfigError(
            f"generate needs at least 1 customer and 60 days, got {customers}, {days}"
        )
    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"format must be parquet or csv, got {fmt!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    normalize_as_of([start, start + dt.timedelta(days=days + horizon_days)])


def _clear(out: Path, *, force: bool) -> None:
    """Refuse to write into a folder that holds anything, unless ``force``; then remove the
    tables a dataset there may hold in either format, so none is left beside the new ones."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; --out must be a folder")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not force:
        raise ConfigError(
            f"{out}: is not empty ({', '.join(present[:3])}{', …' if len(present) > 3 else ''}); "
            "choose a new folder, or pass --force to replace the tables in it"
        )
    for name in SCHEMAS:
        for ext in ("csv", "parquet"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)


def generate(
    out: Path | str,
    *,
    customers: int = 5_000,
    days: int = 730,
    seed: int = 0,
    start: dt.date = dt.date(2024, 1, 1),
    fmt: Literal["parquet", "csv"] = "parquet",
    label_horizon_days: int = 30,
    force: bool = False,
    campaigns: int = 0,
    effects: CampaignsConfig | None = None,
) -> GenerationSummary:
    """Simulate ``customers`` customers over ``days`` days from ``start`` and write the tables.

    Files appear only when complete (written under a temporary name, then renamed). With
    ``campaigns``, that many monthly randomised campaigns run with the true ``effects``
    (default: the packaged ones, see :func:`~churnguard.config.load_effects`), the last a
    ``label_horizon_days`` before the end, and ``treatments`` and ``truth_uplift`` are written
    (see :mod:`churnguard.campaigns`).

    Examples
    --------
    >>> summary = generate("data/demo", customers=2_000, days=365, seed=1)  # doctest: +SKIP
    """
    check_request(customers, days, seed, fmt, start, label_horizon_days)
    campaign_dates = campaign_days(campaigns, days, label_horizon_days)
    if campaigns < 0 or (campaigns and not campaign_dates):
        raise ConfigError(
            f"{campaigns} monthly campaigns do not fit in {days} days: the first must come "
            f"after day 60 and the last {label_horizon_days} days before the end"
        )
    plan = (effects or load_effects()) if campaigns else None
    names = [n for n in SCHEMAS if campaigns or n not in CAMPAIGN_TABLES]

    def chunk_tables(first: int, size: int) -> tuple[dict[str, pa.Table], int]:
        chunk = [seed, first // CHUNK_CUSTOMERS]
        run = (
            None
            if plan is None
            else Campaigns(plan, campaign_dates, label_horizon_days, size, [*chunk, 2])
        )
        tables = _simulate_chunk(chunk, first, size, days, start, label_horizon_days, run)
        truth = tables["truth"]
        churners = truth.filter(pc.is_valid(truth["churn_date"]))["customer_id"]
        return tables, pc.count_distinct(churners).as_py()

    return write_chunks(
        Path(out),
        {n: SCHEMAS[n] for n in names},
        chunk_tables,
        customers=customers,
        fmt=fmt,
        force=force,
        span=(start, start + dt.timedelta(days=days)),
    )


def write_chunks(
    out: Path,
    schemas: dict[str, pa.Schema],
    simulate: Callable[[int, int], tuple[dict[str, pa.Table], int]],
    *,
    customers: int,
    fmt: str,
    force: bool,
    span: tuple[dt.date, dt.date],
) -> GenerationSummary:
    """Write the tables ``simulate(first, size)`` returns for each chunk of customers (with
    how many of them churned) under ``out``, each file renamed into place only once every
    chunk is written; a failure leaves none."""
    _clear(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.{fmt}" for name in schemas}
    writers = {name: _TableWriter(path, schemas[name], fmt) for name, path in files.items()}
    n_events = n_churned = 0
    try:
        for first, size in _chunks(customers):
            tables, churned = simulate(first, size)
            for name, table in tables.items():
                writers[name].write(table)
            n_events += tables["events"].num_rows
            n_churned += churned
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.commit()
    return GenerationSummary(
        out=out,
        customers=customers,
        events=n_events,
        churned=n_churned,
        start=span[0],
        end=span[1],
        files=files,
    )


def generate_entity_table(out: Path, *, customers: int = 2000, seed: int = 9) -> Path:
    """A telecom-shaped entity table with a churn flag: a dozen attributes, no dates, no
    events, as CSV (``customers``, ``labels``), and ``truth``, each customer's true churn
    probability.

    Churn is a logistic function of contract, monthly charges, support calls and late
    payments: additive, the shape where a logistic regression is hard to beat. A quarter of
    the customers are unlabelled (still to be scored).
    """
    rng = np.random.default_rng(seed)
    contract = rng.choice(["monthly", "one_year", "two_year"], customers, p=[0.5, 0.3, 0.2])
    charges = rng.uniform(20, 120, customers).round(2)
    calls = rng.poisson(1.5, customers)
    late = rng.poisson(0.5, customers)
    attrs = pd.DataFrame(
        {
            "customer_id": [f"T{i:05d}" for i in range(customers)],
            "contract": contract,
            "region": rng.choice(["north", "south", "east", "west"], customers),
            "payment_method": rng.choice(["card", "debit", "invoice"], customers),
            "internet": rng.choice(["fibre", "dsl", "none"], customers),
            "segment": rng.choice(["home", "small_business"], customers),
            "paperless": rng.choice(["yes", "no"], customers),
            "monthly_charges": charges,
            "tenure_months": rng.integers(1, 72, customers),
            "support_calls": calls,
            "late_payments": late,
            "products": rng.integers(1, 5, customers),
            "age": rng.integers(18, 80, customers),
        }
    )
    logit = (
        -2.8
        + 1.6 * (contract == "monthly")
        - 0.8 * (contract == "two_year")
        + 0.02 * (charges - 70)
        + 0.45 * calls
        + 0.6 * late
    )
    probability = 1 / (1 + np.exp(-logit))
    churned = (rng.uniform(size=customers) < probability).astype(int)
    labelled = rng.uniform(size=customers) < 0.75
    out.mkdir(parents=True, exist_ok=True)
    ids = attrs["customer_id"]
    attrs.to_csv(out / "customers.csv", index=False)
    labels = pd.DataFrame({"customer_id": ids, "churned": churned})[labelled]
    labels.to_csv(out / "labels.csv", index=False)
    truth = pd.DataFrame({"customer_id": ids, "churn_probability": probability})
    truth.to_csv(out / "truth.csv", index=False)
    return out


def true_hazard(folder: Path, rows: pd.DataFrame, *, column: str = "hazard") -> np.ndarray | None:
    """The simulation's true risk for each ``(customer_id, as_of)`` row, or None without truth.

    For the subscription business it is the hazard on the last weekly grid date on or before
    ``as_of``; for an entity table (:func:`generate_entity_table`), the customer's churn
    probability; for the retailer (:mod:`churnguard.retail`), the true probability of no purchase
    in the horizon, on the grid date equal to ``as_of`` (a purchase between two grid dates
    changes it). Either is the best score any model could give at that date, so its AUC is the
    ceiling to compare a model against. Rows without a truth (a churned customer, a date off
    the retailer's grid) get NaN. For the subscription business, ``column`` reads another
    column of the truth on the same grid date (``engagement``: the latent behind the hazard).
    """
    found = [
        folder / f"truth{ext}" for ext in (".parquet", ".csv") if (folder / f"truth{ext}").exists()
    ]
    if not found:
        return None
    con = duckdb.connect()
    con.register("wanted", rows[["customer_id", "as_of"]].assign(_row=np.arange(len(rows))))
    source = "read_parquet" if found[0].suffix == ".parquet" else "read_csv"
    columns = {
        c
        for (c, *_) in con.execute(
            f"DESCRIBE SELECT * FROM {source}(?)", [str(found[0])]
        ).fetchall()
    }
    if "churn_probability" in columns:  # an entity table's: one per customer, no dates
        query = f"""
        SELECT w._row, t.churn_probability AS hazard
        FROM wanted w LEFT JOIN {source}(?) t ON w.customer_id = t.customer_id
        ORDER BY w._row
        """
    else:
        score, fresh = (
            ("p_no_purchase", "t.date = w.as_of")
            if "p_no_purchase" in columns
            else (column, "t.date > w.as_of - INTERVAL 7 DAY")
        )
        if score not in columns:
            raise ValueError(f"{found[0]} has no column {score!r}")
        value = sql_ident(score)
        query = f"""
        WITH truth AS (SELECT customer_id, CAST(date AS TIMESTAMP) AS date, {value} AS score
                       FROM {source}(?))
        SELECT w._row, CASE WHEN {fresh} THEN t.score END AS hazard
        FROM wanted w ASOF LEFT JOIN truth t
          ON w.customer_id = t.customer_id AND w.as_of >= t.date
        ORDER BY w._row
        """
    hazard = con.execute(query, [str(found[0])]).fetchdf()["hazard"]
    return hazard.to_numpy(dtype=float, na_value=np.nan)


class _TableWriter:
    """Streams record batches to ``<path>.tmp`` and renames it into place on commit."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str):
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        if fmt == "parquet":
            self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        else:
            options = pacsv.WriteOptions(quoting_style="needed")
            self.writer = pacsv.CSVWriter(self.tmp, schema, write_options=options)

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table)

    def commit(self) -> None:
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


@dataclass
class _Events:
    """Events of one chunk, gathered day by day as index/time/type/value arrays."""

    who: list[np.ndarray]
    when: list[np.ndarray]
    kind: list[np.ndarray]
    value: list[np.ndarray]

    def add(
        self,
        who: np.ndarray,
        day: int,
        kind: int,
        value: np.ndarray | None,
        rng: np.random.Generator,
        alive: np.ndarray,
    ) -> None:
        """Keep the events of the ``alive`` customers; a time is drawn for every event, so
        which customers are alive moves no draw."""
        seconds = rng.integers(6 * 3600, 23 * 3600, size=who.size)
        keep = alive[who]
        if not keep.any():
            return
        who = who[keep]
        self.who.append(who)
        self.when.append(day * SECONDS_PER_DAY + seconds[keep])
        self.kind.append(np.full(who.size, kind, dtype=np.int8))
        values = np.full(keep.size, np.nan) if value is None else value.astype(float)
        self.value.append(values[keep])


def _simulate_chunk(
    seed: list[int],
    first: int,
    n: int,
    days: int,
    start: dt.date,
    label_horizon_days: int,
    campaigns: Campaigns | None,
) -> dict[str, pa.Table]:
    """Simulate customers ``first .. first + n - 1`` day by day; return their tables.

    Behaviour and churn draw from two streams, so the same behaviour can meet other churn
    draws, and campaigns from a third.
    """
    rng = np.random.default_rng(seed)
    churn_rng = np.random.default_rng([*seed, 1])
    ids = np.array([f"C{first + i:07d}" for i in range(n)], dtype=object)
    signup = rng.integers(-240, days - 45, size=n)
    channel = rng.integers(0, len(CHANNELS), size=n)
    country = rng.integers(0, len(COUNTRIES), size=n)
    company_size = np.round(np.exp(rng.normal(2.5, 1.2, size=n))).astype(np.int32) + 1
    base = rng.normal(0.0, 0.7, size=n) + np.array([0.2, -0.3, 0.1, 0.3, -0.2])[channel]
    drift = rng.normal(-0.003, 0.006, size=n)
    engagement = base + rng.normal(0, 0.3, size=n)
    willingness = np.exp(rng.normal(np.log(55.0), 0.6, size=n))
    card_risk = np.where(rng.random(n) < 0.1, 0.25, 0.02)
    plan = rng.choice(3, size=n, p=[0.5, 0.35, 0.15])
    billing_offset = rng.integers(0, 30, size=n)

    open_tickets = np.zeros(n, dtype=np.int32)
    last_nps = np.full(n, 8.0)
    failed_recently = np.zeros(n)  # decays; 1.0 right after a failed payment
    churn_day = np.full(n, -1, dtype=np.int64)
    sub_rows: list[tuple[int, int, int, int]] = [
        (i, int(signup[i]), -1, int(plan[i])) for i in range(n)
    ]
    current_row = np.arange(n)
    events = _Events([], [], [], [])
    truth_who: list[np.ndarray] = []
    truth_day: list[np.ndarray] = []
    truth_hazard: list[np.ndarray] = []
    truth_engagement: list[np.ndarray] = []

    position = np.zeros(n, dtype=np.int64)
    for day in range(days):
        # Behaviour is drawn for everyone signed up, churned or not (a churned customer's acts
        # are simply not written), so no draw depends on who churned: see campaigns.py.
        idx = np.flatnonzero(signup <= day)
        if idx.size == 0:
            continue
        alive = churn_day < 0
        position[idx] = np.arange(idx.size)
        e = engagement[idx]
        price_gap = np.log(PLAN_MRR[plan[idx]] / willingness[idx])
        logit = (
            -7.1
            - 0.9 * e
            + 0.45 * open_tickets[idx]
            + 0.9 * (last_nps[idx] <= 6)
            + 0.8 * failed_recently[idx]
            + 0.6 * np.clip(price_gap, 0, None)
        )
        if campaigns is not None:
            if day in campaigns.days:
                active = idx[alive[idx] & (signup[idx] < day)]
                calm = (open_tickets == 0) & (failed_recently < 0.1) & (last_nps > 6)
                gap = np.log(PLAN_MRR[plan] / willingness)
                problems = {
                    "tickets": (open_tickets > 0).astype(float),
                    "payments": (failed_recently > 0.2).astype(float),  # failed within 30 days
                    "price": (gap > 0).astype(float),
                    "nps": (last_nps <= 6).astype(float),
                    "engagement": np.clip(-engagement, 0, 1),
                }
                campaigns.start(day, active, engagement, calm, problems)
            logit = campaigns.apply(day, position, logit)
        hazard = 1.0 / (1.0 + np.exp(-logit))
        if day % 7 == 0:
            living = alive[idx]
            truth_who.append(idx[living])
            truth_day.append(np.full(int(living.sum()), day))
            truth_hazard.append(hazard[living].astype(np.float32))
            truth_engagement.append(e[living].astype(np.float32))

        # behaviour of the day
        logins = rng.poisson(np.minimum(0.09 * np.exp(0.8 * e), 3.0))
        events.add(np.repeat(idx, logins), day, 0, None, rng, alive)
        buys = rng.poisson(0.018 * np.exp(0.6 * e))
        buyers = np.repeat(idx, buys)
        amount = np.round(np.exp(rng.normal(np.log(35.0) + 0.35 * plan[buyers], 0.5)), 2)
        events.add(buyers, day, 1, amount, rng, alive)
        new_tickets = rng.random(idx.size) < 0.004 + 0.006 * np.exp(-0.8 * e)
        events.add(idx[new_tickets], day, 2, None, rng, alive)
        open_tickets[idx[new_tickets]] += 1
        has_open = idx[open_tickets[idx] > 0]
        complaints = has_open[rng.random(has_open.size) < 0.04 * open_tickets[has_open]]
        events.add(complaints, day, 3, None, rng, alive)
        resolved = has_open[rng.random(has_open.size) < 0.18]
        open_tickets[resolved] -= 1
        answers = resolved[rng.random(resolved.size) < 0.6]
        csat = np.clip(
            np.round(
                3.6
                + 0.7 * engagement[answers]
                - 0.6 * open_tickets[answers]
                + rng.normal(0, 0.7, answers.size)
            ),
            1,
            5,
        )
        events.add(answers, day, 5, csat, rng, alive)
        surveyed = idx[rng.random(idx.size) < 1 / 120]
        nps = np.clip(
            np.round(7.2 + 1.8 * engagement[surveyed] + rng.normal(0, 1.3, surveyed.size)), 0, 10
        )
        last_nps[surveyed] = nps
        events.add(surveyed, day, 4, nps, rng, alive)
        billed = idx[(day - billing_offset[idx]) % 30 == 0]
        failed = billed[rng.random(billed.size) < card_risk[billed]]
        events.add(failed, day, 6, None, rng, alive)
        failed_recently *= 0.95
        failed_recently[failed] = 1.0

        # plan changes: downgrade when engagement is low or the price hurts, upgrade when high
        down = idx[
            (plan[idx] > 0)
            & (rng.random(idx.size) < 0.0015 * np.exp(-e + np.clip(price_gap, 0, 2)))
        ]
        up = idx[(plan[idx] < 2) & (rng.random(idx.size) < 0.0006 * np.exp(e))]
        up = np.setdiff1d(up, down)
        for who, step in ((down, -1), (up, 1)):
            plan[who] += step
            for i in who[alive[who]]:
                row = current_row[i]
                sub_rows[row] = (*sub_rows[row][:2], day, sub_rows[row][3])
                current_row[i] = len(sub_rows)
                sub_rows.append((int(i), day, -1, int(plan[i])))
        engagement[down] -= 0.2

        # engagement drifts, dragged down by open tickets; then the day's churn
        engagement[idx] += (
            drift[idx]
            + 0.01 * (base[idx] - e)
            - 0.02 * open_tickets[idx]
            + rng.normal(0, 0.06, idx.size)
        )
        # Bounded: a churned customer's tickets no longer end, and would drag it down forever.
        engagement[idx] = np.clip(engagement[idx], -5.0, 5.0)
        leavers = idx[(churn_rng.random(idx.size) < hazard) & alive[idx]]
        churn_day[leavers] = day
        for i in leavers:
            row = current_row[i]
            sub_rows[row] = (*sub_rows[row][:2], day, sub_rows[row][3])

    tables = _chunk_tables(
        ids,
        signup,
        channel,
        country,
        company_size,
        churn_day,
        sub_rows,
        events,
        (truth_who, truth_day, truth_hazard, truth_engagement),
        days,
        start,
        label_horizon_days,
    )
    if campaigns is not None:
        treatments, uplift = campaigns.tables(ids, np.datetime64(start, "D"))
        for name, columns in (("treatments", treatments), ("truth_uplift", uplift)):
            tables[name] = pa.table(columns, schema=SCHEMAS[name])
    return tables


def _chunk_tables(
    ids: np.ndarray,
    signup: np.ndarray,
    channel: np.ndarray,
    country: np.ndarray,
    company_size: np.ndarray,
    churn_day: np.ndarray,
    sub_rows: list[tuple[int, int, int, int]],
    events: _Events,
    truth: tuple[list[np.ndarray], ...],
    days: int,
    start: dt.date,
    label_horizon_days: int,
) -> dict[str, pa.Table]:
    """Arrow tables of one simulated chunk, events sorted by customer then time."""
    epoch = np.datetime64(start, "D")
    to_date = functools.partial(dates, epoch)
    customers = pa.table(
        {
            "customer_id": ids,
            "signup_date": to_date(signup),
            "country": np.array(COUNTRIES, dtype=object)[country],
            "acquisition_channel": np.array(CHANNELS, dtype=object)[channel],
            "company_size": company_size,
        },
        schema=SCHEMAS["customers"],
    )

    who = np.concatenate(events.who) if events.who else np.zeros(0, dtype=np.int64)
    when = np.concatenate(events.when) if events.when else np.zeros(0, dtype=np.int64)
    kind = np.concatenate(events.kind) if events.kind else np.zeros(0, dtype=np.int8)
    value = np.concatenate(events.value) if events.value else np.zeros(0)
    order = np.lexsort((value, kind, when, who))
    # Two events of one kind in the same second with the same value would be an exact
    # duplicate row, which the data contract refuses: keep one.
    same = [a[order][1:] == a[order][:-1] for a in (who, when, kind)]
    same_value = (value[order][1:] == value[order][:-1]) | (
        np.isnan(value[order][1:]) & np.isnan(value[order][:-1])
    )
    order = order[np.concatenate([[True], ~(same[0] & same[1] & same[2] & same_value)])]
    seconds = epoch.astype("datetime64[s]") + when[order].astype("timedelta64[s]")
    events_table = pa.table(
        {
            "customer_id": ids[who[order]],
            "timestamp": seconds,
            "event_type": np.array(EVENT_TYPES, dtype=object)[kind[order]],
            "value": pa.array(value[order], from_pandas=True),
        },
        schema=SCHEMAS["events"],
    )

    rows = np.array(sub_rows, dtype=np.int64).reshape(-1, 4)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    subscriptions = pa.table(
        {
            "customer_id": ids[rows[:, 0]],
            "start_date": to_date(rows[:, 1]),
            "end_date": to_date(rows[:, 2], missing=rows[:, 2] < 0),
            "plan": np.array(PLANS, dtype=object)[rows[:, 3]],
            "mrr": PLAN_MRR[rows[:, 3]],
        },
        schema=SCHEMAS["subscriptions"],
    )

    snapshot = days - label_horizon_days
    active = (signup < snapshot) & ((churn_day < 0) | (churn_day >= snapshot))
    labels = pa.table(
        {
            "customer_id": ids[active],
            "churned": (churn_day[active] >= 0).astype(np.int8),
        },
        schema=SCHEMAS["labels"],
    )

    truth_who, truth_day, truth_hazard, truth_engagement = (
        np.concatenate(part) if part else np.zeros(0) for part in truth
    )
    truth_who = truth_who.astype(np.int64)
    order = np.lexsort((truth_day, truth_who))
    truth_who, truth_day = truth_who[order], truth_day[order].astype(np.int64)
    churned_at = churn_day[truth_who]
    truth_table = pa.table(
        {
            "customer_id": ids[truth_who],
            "date": to_date(truth_day),
            "hazard": truth_hazard[order].astype(np.float32),
            "engagement": truth_engagement[order].astype(np.float32),
            "churn_date": to_date(churned_at, missing=churned_at < 0),
        },
        schema=SCHEMAS["truth"],
    )
    return {
        "customers": customers,
        "events": events_table,
        "subscriptions": subscriptions,
        "labels": labels,
        "truth": truth_table,
    }


def dates(epoch: np.datetime64, day: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Day offsets from ``epoch`` as an Arrow date column (``missing`` rows empty)."""
    return pa.array(epoch + day.astype("timedelta64[D]"), type=pa.date32(), mask=missing)


def _chunks(customers: int) -> Iterator[tuple[int, int]]:
    """(first customer, chunk size) pairs: fixed sizes, so a seed always gives the same data."""
    for first in range(0, customers, CHUNK_CUSTOMERS):
        yield first, min(CHUNK_CUSTOMERS, customers - first)
