"""Customer value: what keeping a customer is worth, to weigh risk by what is at stake.

* Subscriptions: current MRR × expected remaining months.
* Otherwise (purchases): the CLV formula, average purchase value × purchases per year ×
  expected remaining years, each customer's own figures shrunk toward the population's where
  the history is short (a customer with one purchase is mostly population, one with fifty is
  mostly themselves).

Expected remaining lifetime comes from the population's churn rate: the mean calibrated churn
probability over the horizon, turned into a monthly rate, gives 1 / rate months under a constant
hazard, capped at :data:`MAX_MONTHS`. The same lifetime applies to everyone: value at risk is
then probability × value, without counting a customer's own risk twice.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from churnguard.contract import Dataset
from churnguard.features import FeaturePlan

MAX_MONTHS = 120.0
DAYS_PER_MONTH = 365.25 / 12
#: Prior weight of the population's average purchase value, in purchases.
PRIOR_PURCHASES = 3.0
#: Prior weight of the population's purchase rate, in years of history.
PRIOR_YEARS = 0.5


def expected_lifetime_months(mean_probability: float, horizon_days: int) -> float:
    """Expected remaining months under a constant hazard with this churn rate per horizon."""
    p = min(max(mean_probability, 1e-9), 1 - 1e-9)
    monthly = 1 - (1 - p) ** (DAYS_PER_MONTH / horizon_days)
    return float(min(MAX_MONTHS, 1 / monthly))


def purchase_history(dataset: Dataset, as_of: dt.datetime, plan: FeaturePlan) -> pd.DataFrame:
    """Per customer, before ``as_of``: ``purchases``, ``spend`` and ``first`` purchase time.

    Purchases are ``purchase`` events when the data has them, else every non-survey event type
    that carries a value. Empty when there is no such event type.
    """
    kinds = ("purchase",) if "purchase" in plan.value_events else plan.value_events
    if not kinds:
        return pd.DataFrame(columns=["customer_id", "purchases", "spend", "first"])
    ev = dataset.table("events")
    ev = ev.filter(ev.event_type.isin(kinds), ev.timestamp < as_of, ev.value.notnull())
    return (
        ev.group_by("customer_id")
        .aggregate(purchases=ev.count(), spend=ev.value.sum(), first=ev.timestamp.min())
        .to_pandas()
    )


def customer_value(
    customers: pd.DataFrame,
    *,
    months: float,
    as_of: dt.datetime,
    history: pd.DataFrame | None = None,
) -> np.ndarray:
    """Value of each row of ``customers`` (``customer_id``, optional ``mrr``), see module doc.

    A positive ``mrr`` wins; the rest get the shrunk CLV from ``history``
    (:func:`purchase_history`), or 0 without any purchase history in the data.
    """
    value = np.zeros(len(customers))
    if "mrr" in customers:
        mrr = pd.to_numeric(customers["mrr"], errors="coerce").fillna(0).to_numpy(float)
        value = mrr * months
    if history is None or history.empty:
        return value
    own = customers[["customer_id"]].merge(history, on="customer_id", how="left")
    n = own["purchases"].fillna(0).to_numpy(float)
    spend = own["spend"].fillna(0).to_numpy(float)
    first = pd.to_datetime(own["first"]).dt.tz_localize(None)
    years = ((pd.Timestamp(as_of) - first).dt.days.fillna(0).to_numpy(float) + 1) / 365.25
    known = history["purchases"].to_numpy(float)
    population_mean = history["spend"].sum() / known.sum()
    history_years = (
        (pd.Timestamp(as_of) - pd.to_datetime(history["first"]).dt.tz_localize(None)).dt.days + 1
    ) / 365.25
    population_rate = known.sum() / history_years.sum()
    mean_value = (spend + PRIOR_PURCHASES * population_mean) / (n + PRIOR_PURCHASES)
    per_year = (n + PRIOR_YEARS * population_rate) / (years + PRIOR_YEARS)
    clv = mean_value * per_year * months / 12
    return np.where(value > 0, value, clv)


def values_at(
    dataset: Dataset,
    frame: pd.DataFrame,
    probability: np.ndarray,
    *,
    plan: FeaturePlan,
    as_of: dt.datetime,
    horizon_days: int,
) -> np.ndarray:
    """:func:`customer_value` of each row of a feature frame scored with ``probability``.

    The lifetime comes from the mean probability; the purchase history is read only when some
    row has no MRR to go by.
    """
    months = expected_lifetime_months(float(probability.mean()), horizon_days)
    history = None
    if ("mrr" not in frame or (frame["mrr"].fillna(0) <= 0).any()) and dataset.has("events"):
        history = purchase_history(dataset, as_of, plan)
    return customer_value(frame, months=months, as_of=as_of, history=history)
