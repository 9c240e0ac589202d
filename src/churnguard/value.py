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
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
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


@dataclass(frozen=True)
class Prior:
    """The population's purchase figures that short histories are shrunk toward."""

    #: Average value of a purchase.
    mean_value: float
    #: Purchases per customer-year.
    per_year: float


def purchase_history(dataset: Dataset, as_of: dt.datetime, plan: FeaturePlan) -> ir.Table | None:
    """Per customer, before ``as_of``: ``purchases``, ``spend`` and ``days`` since the first one.

    Purchases are ``purchase`` events when the data has them, else every non-survey event type
    that carries a value. None when there is no such event type.
    """
    kinds = ("purchase",) if "purchase" in plan.value_events else plan.value_events
    if not kinds or not dataset.has("events"):
        return None
    ev = dataset.table("events")
    ev = ev.filter(ev.event_type.isin(kinds), ev.timestamp < as_of, ev.value.notnull())
    history = ev.group_by("customer_id").aggregate(
        purchases=ev.count(), spend=ev.value.sum(), first=ev.timestamp.min()
    )
    # Whole days elapsed, from epoch seconds: the same number on every engine.
    elapsed = ibis.literal(as_of).epoch_seconds() - history.first.epoch_seconds()
    return history.select(
        "customer_id", "purchases", "spend", days=(elapsed // 86400).cast("int64")
    )


def purchase_prior(history: ir.Table | pd.DataFrame) -> Prior | None:
    """The population's figures from a :func:`purchase_history` table, as a query (summed by
    its engine) or already read (None when it is empty)."""
    if isinstance(history, pd.DataFrame):
        sums = history[["purchases", "spend"]].sum().to_dict()
        sums["days"] = (history["days"] + 1).sum()
    else:
        sums = (
            history.aggregate(
                purchases=history.purchases.sum(),
                spend=history.spend.sum(),
                days=(history.days + 1).sum(),
            )
            .to_pandas()
            .iloc[0]
            .to_dict()
        )
    purchases, spend, days = (float(sums[c] or 0) for c in ("purchases", "spend", "days"))
    if not purchases:
        return None
    return Prior(mean_value=spend / purchases, per_year=purchases / (days / 365.25))


def customer_value(
    customers: pd.DataFrame, *, months: float, prior: Prior | None = None
) -> np.ndarray:
    """Value of each row of ``customers``, see the module doc.

    ``customers`` has ``customer_id``, optionally ``mrr``, and the :func:`purchase_history`
    columns (``purchases``, ``spend``, ``days``; missing where a customer has none). A positive
    ``mrr`` wins; the rest get the shrunk CLV, or 0 without a ``prior``.
    """
    value = np.zeros(len(customers))
    if "mrr" in customers:
        mrr = pd.to_numeric(customers["mrr"], errors="coerce").fillna(0).to_numpy(float)
        value = mrr * months
    if prior is None:
        return value
    n = customers["purchases"].fillna(0).to_numpy(float)
    spend = customers["spend"].fillna(0).to_numpy(float)
    years = (customers["days"].fillna(0).to_numpy(float) + 1) / 365.25
    mean_value = (spend + PRIOR_PURCHASES * prior.mean_value) / (n + PRIOR_PURCHASES)
    per_year = (n + PRIOR_YEARS * prior.per_year) / (years + PRIOR_YEARS)
    clv = mean_value * per_year * months / 12
    return np.where(value > 0, value, clv)


def needs_history(frame: pd.DataFrame) -> bool:
    """Whether some row has no MRR to go by (only then is the purchase history read)."""
    return "mrr" not in frame or bool((frame["mrr"].fillna(0) <= 0).any())


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

    The lifetime comes from the mean probability.
    """
    months = expected_lifetime_months(float(probability.mean()), horizon_days)
    history = purchase_history(dataset, as_of, plan) if needs_history(frame) else None
    if history is None:
        return customer_value(frame, months=months)
    read = history.to_pandas()
    rows = frame[["customer_id", *(["mrr"] if "mrr" in frame else [])]]
    rows = rows.merge(read, on="customer_id", how="left")
    return customer_value(rows, months=months, prior=purchase_prior(read))
