"""Randomised holdouts: who on tonight's list is contacted, and who is kept back to measure by.

Every customer the list would contact is assigned ``treated`` or ``holdout`` by a hash of
(salt, customer, as-of date): a stable coin, so a re-run assigns the same way, independent of
risk, value or intervention, so within each intervention and each risk band the holdout is a
random share of the customers. Holdout customers are left out of ``interventions.csv``; every
decision, both groups, goes to ``assignments.csv``, which is what later measures the
interventions' effect (treated against holdout churn).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: The columns of ``assignments.csv``.
ASSIGNMENT_COLUMNS = (
    "customer_id",
    "as_of",
    "intervention",
    "group",
    "cost",
    "churn_probability",
    "customer_value",
    "expected_benefit",
    "run_id",
)
_SCALE = float(2**64)


def coin(salt: str, customer_ids: Iterable[str], as_of: dt.date) -> np.ndarray:
    """A number in [0, 1) per customer: the first 8 bytes of SHA-256 over salt, customer and
    date, each field length-prefixed so no two triples hash the same bytes."""
    day = as_of.isoformat()
    out = []
    for customer in customer_ids:
        fields = (salt, str(customer), day)
        message = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
        digest = hashlib.sha256(message).digest()
        out.append(int.from_bytes(digest[:8], "big") / _SCALE)
    return np.array(out, dtype=float)


def assign(
    listed: pd.DataFrame, *, as_of: dt.date, holdout: float, salt: str, run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the list into the customers to contact (ranked again from 1) and the decisions
    for ``assignments.csv``, in list order: each row ``holdout`` with probability ``holdout``."""
    kept_back = coin(salt, listed["customer_id"], as_of) < holdout
    decisions = pd.DataFrame(
        {
            "customer_id": listed["customer_id"].to_numpy(),
            "as_of": as_of.isoformat(),
            "intervention": listed["intervention"].to_numpy(),
            "group": np.where(kept_back, "holdout", "treated"),
            "cost": listed["intervention_cost"].to_numpy(),
            "churn_probability": listed["churn_probability"].to_numpy(),
            "customer_value": listed["customer_value"].to_numpy(),
            "expected_benefit": listed["expected_benefit"].to_numpy(),
            "run_id": run_id,
        },
        columns=list(ASSIGNMENT_COLUMNS),
    )
    treated = listed[~kept_back].reset_index(drop=True)
    return treated.assign(rank=np.arange(1, len(treated) + 1)), decisions
