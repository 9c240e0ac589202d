"""Randomised holdouts: stable, at the share asked for, and blind to risk."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import stats

from churnguard.assignment import ASSIGNMENT_COLUMNS, assign, coin
from churnguard.interventions import CHOSEN_COLUMNS

NIGHT = dt.date(2025, 12, 1)


def _list(n: int, seed: int = 0) -> pd.DataFrame:
    """A ranked list of ``n`` customers, riskiest first, as choose() writes it."""
    rng = np.random.default_rng(seed)
    p = np.sort(rng.uniform(0, 1, n))[::-1].round(6)
    return pd.DataFrame(
        {
            "rank": np.arange(1, n + 1),
            "customer_id": [f"C{i:07d}" for i in rng.permutation(n)],
            "churn_probability": p,
            "risk_tier": np.where(p >= 0.3, "high", "low"),
            "customer_value": 100.0,
            "value_at_risk": (p * 100).round(2),
            "reason_1": "r",
            "reason_2": "",
            "reason_3": "",
            "intervention": rng.choice(["call", "e-mail", "discount"], n),
            "intervention_cost": 5.0,
            "expected_benefit": (p * 50 - 5).round(2),
            "effect_source": "assumed",
            "answers": "r",
        }
    )[list(CHOSEN_COLUMNS)]


def test_the_holdout_is_the_share_asked_for_and_flat_across_risk_and_interventions():
    listed = _list(40_000)
    contacted, decisions = assign(listed, as_of=NIGHT, holdout=0.1, salt="s", run_id="r1")
    held = (decisions["group"] == "holdout").to_numpy()
    standard_error = np.sqrt(0.1 * 0.9 / len(listed))
    assert abs(held.mean() - 0.1) < 3 * standard_error
    deciles = pd.qcut(decisions["churn_probability"], 10, labels=False, duplicates="drop")
    for groups in (deciles, decisions["intervention"]):
        table = pd.crosstab(groups, held)
        assert stats.chi2_contingency(table).pvalue > 0.001  # no band is held out more
    assert len(contacted) == (~held).sum()


def test_assignment_is_stable_and_the_salt_and_date_draw_another_holdout():
    listed = _list(5_000)
    first = assign(listed, as_of=NIGHT, holdout=0.2, salt="a", run_id="r")
    again = assign(listed, as_of=NIGHT, holdout=0.2, salt="a", run_id="r")
    pd.testing.assert_frame_equal(first[1], again[1])
    pd.testing.assert_frame_equal(first[0], again[0])
    groups = first[1]["group"]
    salted = assign(listed, as_of=NIGHT, holdout=0.2, salt="b", run_id="r")[1]["group"]
    tomorrow = assign(listed, as_of=dt.date(2025, 12, 2), holdout=0.2, salt="a", run_id="r")
    assert (groups != salted).mean() > 0.2 and (groups != tomorrow[1]["group"]).mean() > 0.2
    # a customer's coin depends on the customer, not on who else is on the list
    alone = coin("a", listed["customer_id"].head(10), NIGHT)
    np.testing.assert_array_equal(alone, coin("a", listed["customer_id"], NIGHT)[:10])
    assert coin("a|b", ["c"], NIGHT) != coin("a", ["b|c"], NIGHT)  # fields never run together


def test_the_contacted_list_is_the_treated_decisions_ranked_again():
    listed = _list(300)
    contacted, decisions = assign(listed, as_of=NIGHT, holdout=0.3, salt="", run_id="abc")
    assert list(decisions.columns) == list(ASSIGNMENT_COLUMNS)
    assert list(decisions["customer_id"]) == list(listed["customer_id"])  # list order
    treated = decisions[decisions["group"] == "treated"]
    assert list(contacted["customer_id"]) == list(treated["customer_id"])
    assert list(contacted["rank"]) == list(range(1, len(contacted) + 1))
    assert list(contacted.columns) == list(CHOSEN_COLUMNS)
    assert (decisions["as_of"] == "2025-12-01").all() and (decisions["run_id"] == "abc").all()
    np.testing.assert_array_equal(decisions["cost"], listed["intervention_cost"])
    everyone, all_treated = assign(listed, as_of=NIGHT, holdout=0.0, salt="", run_id="abc")
    assert (all_treated["group"] == "treated").all()
    pd.testing.assert_frame_equal(everyone, listed)
