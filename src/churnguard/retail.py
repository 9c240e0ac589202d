"""A simulated retailer: a purchase log with no contracts, whose churn is silent dropout.

Customers arrive uniformly over the simulated days with a first purchase. While alive, each
buys at its own rate ``λ ~ Gamma(r, α)`` and, after each repeat purchase, drops out for good
with its own probability ``p ~ Beta(a, b)`` (the BG/NBD process). Each spend is
``Gamma(p_spend, ν)`` around the customer's own mean, ``ν ~ Gamma(q, γ)`` (Gamma-Gamma). The
acquisition channel shifts the buying rate and the dropout: a model that reads the channel
beside the purchase history can do better than one BG/NBD fitted to everybody.

Outputs, under ``out``: ``customers`` (``customer_id, signup_date, country,
acquisition_channel``; the country carries no signal), ``events`` (``purchase`` rows with their
value) and ``truth``: on a grid every 7 days from the first day, each customer's true
probability of no purchase in the ``horizon_days`` from that date (``p_no_purchase``), with
``dropout_date`` (empty while alive at the end). The probability is the posterior under the
customer's channel's true parameters given the purchases before the date: the best any model
of the purchase log can do, so its ROC-AUC is the ceiling to compare a model against.

Customers are simulated in fixed-size chunks, each from its own seeded generator and written as
it finishes, as :mod:`churnguard.synth` does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from churnguard.bgnbd import BGNBD
from churnguard.synth import (
    CHANNELS,
    COUNTRIES,
    SCHEMAS,
    SECONDS_PER_DAY,
    GenerationSummary,
    check_request,
    dates,
    write_chunks,
)

#: Days between the truth's dates.
TRUTH_EVERY_DAYS = 7
#: Per acquisition channel (in the order of ``CHANNELS``): BG/NBD ``r, α`` (days), ``a, b``.
CHANNEL_PARAMETERS = {
    "organic": BGNBD(r=0.7, alpha=25.0, a=1.2, b=6.0),
    "paid_search": BGNBD(r=0.7, alpha=40.0, a=2.0, b=4.0),
    "partner": BGNBD(r=0.7, alpha=30.0, a=1.0, b=5.0),
    "referral": BGNBD(r=0.7, alpha=20.0, a=0.8, b=8.0),
    "social": BGNBD(r=0.7, alpha=50.0, a=2.5, b=3.5),
}
#: Gamma-Gamma spend: shape of each spend, and the shape and rate of the customer's ``ν``.
SPEND = {"p": 6.0, "q": 4.0, "gamma": 15.0}

RETAIL_SCHEMAS = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("signup_date", pa.date32()),
            ("country", pa.string()),
            ("acquisition_channel", pa.string()),
        ]
    ),
    "events": SCHEMAS["events"],
    "truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("date", pa.date32()),
            ("p_no_purchase", pa.float32()),
            ("dropout_date", pa.date32()),
        ]
    ),
}


def generate_purchases(
    out: Path | str,
    *,
    customers: int = 5_000,
    days: int = 730,
    seed: int = 0,
    start: dt.date = dt.date(2024, 1, 1),
    fmt: Literal["parquet", "csv"] = "parquet",
    horizon_days: int = 90,
    force: bool = False,
) -> GenerationSummary:
    """Simulate a retailer's purchase log and write it with its truth (see the module).

    Files appear only when complete; a seed always gives the same files.
    """
    check_request(customers, days, seed, fmt, start, horizon_days)

    def chunk_tables(first: int, size: int) -> tuple[dict[str, pa.Table], int]:
        rng = np.random.default_rng([seed, first, 3])
        return _simulate(rng, first, size, days, start, horizon_days)

    return write_chunks(
        Path(out),
        RETAIL_SCHEMAS,
        chunk_tables,
        customers=customers,
        fmt=fmt,
        force=force,
        span=(start, start + dt.timedelta(days=days)),
    )


def _simulate(
    rng: np.random.Generator, first: int, n: int, days: int, start: dt.date, horizon: int
) -> tuple[dict[str, pa.Table], int]:
    """One chunk's tables, and how many of its customers dropped out."""
    channel = rng.integers(len(CHANNELS), size=n)
    country = rng.integers(len(COUNTRIES), size=n)
    params = [CHANNEL_PARAMETERS[c] for c in CHANNELS]
    r = np.array([m.r for m in params])[channel]
    alpha = np.array([m.alpha for m in params])[channel]
    a = np.array([m.a for m in params])[channel]
    b = np.array([m.b for m in params])[channel]
    rate = rng.gamma(r, 1 / alpha)
    dropout = rng.beta(a, b)
    nu = rng.gamma(SPEND["q"], 1 / SPEND["gamma"], size=n)
    birth = rng.uniform(0, days, size=n)

    who, when = [np.arange(n)], [birth]
    died = np.full(n, np.nan)
    t, alive = birth.copy(), np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1 / rate[idx])
        ended = t[idx] >= days
        alive[idx[ended]] = False
        bought = idx[~ended]
        who.append(bought)
        when.append(t[bought])
        gone = bought[rng.random(bought.size) < dropout[bought]]
        alive[gone] = False
        died[gone] = t[gone]
    who_all, when_all = np.concatenate(who), np.concatenate(when)
    order = np.lexsort((when_all, who_all))
    who_all, when_all = who_all[order], when_all[order]
    spend = np.round(rng.gamma(SPEND["p"], 1 / nu[who_all]), 2)

    ids = np.array([f"R{first + i:07d}" for i in range(n)], dtype=object)
    epoch = np.datetime64(start, "D")
    seconds = np.floor(when_all * SECONDS_PER_DAY).astype("int64")
    customers = pa.table(
        {
            "customer_id": ids,
            "signup_date": dates(epoch, np.floor(birth).astype(int)),
            "country": np.array(COUNTRIES, dtype=object)[country],
            "acquisition_channel": np.array(CHANNELS, dtype=object)[channel],
        },
        schema=RETAIL_SCHEMAS["customers"],
    )
    events = pa.table(
        {
            "customer_id": ids[who_all],
            "timestamp": pa.array(
                epoch.astype("datetime64[s]") + seconds.astype("timedelta64[s]"),
                type=pa.timestamp("s"),
            ),
            "event_type": np.full(who_all.size, "purchase", dtype=object),
            "value": spend,
        },
        schema=RETAIL_SCHEMAS["events"],
    )
    truth = _truth(ids, birth, died, who_all, when_all, channel, days, epoch, horizon)
    return {"customers": customers, "events": events, "truth": truth}, int(np.isfinite(died).sum())


def _truth(
    ids: np.ndarray,
    birth: np.ndarray,
    died: np.ndarray,
    who: np.ndarray,
    when: np.ndarray,
    channel: np.ndarray,
    days: int,
    epoch: np.datetime64,
    horizon: int,
) -> pa.Table:
    """Each born customer's posterior probability of no purchase in the horizon, at every
    grid date, from the purchases before it (``who``/``when`` sorted by customer and time)."""
    n = ids.size
    offsets = np.searchsorted(who, np.arange(n))
    keys = who * (days + 1.0) + when
    parts: dict[str, list[np.ndarray]] = {"who": [], "day": [], "p": []}
    for day in range(TRUTH_EVERY_DAYS, days + 1, TRUTH_EVERY_DAYS):
        born = np.flatnonzero(birth < day)
        before = np.searchsorted(keys, born * (days + 1.0) + day) - offsets[born]
        last = when[offsets[born] + before - 1]
        x, t_x, T = before - 1.0, last - birth[born], day - birth[born]
        p = np.empty(born.size)
        for k, name in enumerate(CHANNELS):
            of = channel[born] == k
            p[of] = CHANNEL_PARAMETERS[name].p_none(x[of], t_x[of], T[of], horizon)
        parts["who"].append(born)
        parts["day"].append(np.full(born.size, day))
        parts["p"].append(p)
    who_t, day_t, p_t = (np.concatenate(v) for v in parts.values())
    order = np.lexsort((day_t, who_t))
    who_t, day_t = who_t[order], day_t[order]
    gone = died[who_t]
    return pa.table(
        {
            "customer_id": ids[who_t],
            "date": dates(epoch, day_t),
            "p_no_purchase": p_t[order].astype(np.float32),
            "dropout_date": dates(
                epoch, np.nan_to_num(np.floor(gone)).astype(int), ~np.isfinite(gone)
            ),
        },
        schema=RETAIL_SCHEMAS["truth"],
    )
