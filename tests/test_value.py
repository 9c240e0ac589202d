"""Customer value: each customer's lifetime from their own churn probability, their charge
and their purchases (a shrunk CLV)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import churnguard as cg
from churnguard.value import (
    DAYS_PER_MONTH,
    MAX_MONTHS,
    PRIOR_PURCHASES,
    PRIOR_YEARS,
    Prior,
    customer_value,
    expected_lifetime_months,
    purchase_history,
    purchase_prior,
    values_at,
)
from conftest import write_dataset

AS_OF = dt.datetime(2025, 3, 1)


def test_lifetime_is_each_customers_constant_hazard_expectation_and_capped():
    # a 30-day churn probability of 5 %: a monthly rate of 1 - 0.95 ** (30.44 / 30)
    monthly = 1 - 0.95 ** (DAYS_PER_MONTH / 30)
    assert expected_lifetime_months(0.05, 30) == pytest.approx(1 / monthly)
    assert expected_lifetime_months(0.0, 30) == MAX_MONTHS
    lives = expected_lifetime_months(np.array([0.05, 0.1, 0.3, 0.9]), 90)
    assert list(lives) == sorted(lives, reverse=True)  # riskier customers stay shorter
    assert lives[-1] >= 1.0  # even a certain churner pays the month they are in
    # the same probability over a longer horizon is a lower rate: a longer life
    assert expected_lifetime_months(0.1, 180) > expected_lifetime_months(0.1, 90)


def test_a_subscribers_purchases_add_to_the_charge_and_a_non_buyer_adds_nothing():
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "mrr": [20.0, 0.0, None, 30.0],
            "purchases": [4, 4, None, None],
            "spend": [200.0, 200.0, None, None],
            "days": [364, 364, None, None],
        }
    )
    months = np.array([12.0, 12.0, 12.0, 6.0])
    charged = customer_value(rows[["customer_id", "mrr"]], months=months)
    assert list(charged) == [240.0, 0.0, 0.0, 180.0]  # no prior: purchases count for nothing
    prior = Prior(mean_value=50.0, per_year=4.0)
    value = customer_value(rows, months=months, prior=prior)
    # 4 purchases of 50 in a year, shrunk toward a population with the same figures
    years = 365 / 365.25  # 364 days since the first purchase, counted inclusively
    spend_a_year = 50.0 * (4 + PRIOR_YEARS * 4.0) / (years + PRIOR_YEARS)
    assert value[0] == pytest.approx(240.0 + spend_a_year)  # MRR and purchases, a year of each
    assert value[1] == pytest.approx(spend_a_year)
    # c: no charge and no history is the population's buyer, for the days it has been seen
    per_year = (PRIOR_YEARS * 4.0) / (1 / 365.25 + PRIOR_YEARS)
    assert value[2] == pytest.approx(50.0 * per_year)
    assert value[3] == 180.0  # a subscriber who never bought is no buyer


def test_a_long_history_outweighs_the_population_and_a_short_one_does_not():
    prior = Prior(mean_value=10.0, per_year=2.0)
    few = pd.DataFrame({"customer_id": ["x"], "purchases": [1], "spend": [100.0], "days": [0]})
    many = pd.DataFrame({"customer_id": ["y"], "purchases": [50], "spend": [5000.0], "days": [0]})
    mean_few = (100.0 + PRIOR_PURCHASES * 10.0) / (1 + PRIOR_PURCHASES)
    assert customer_value(few, months=12, prior=prior)[0] == pytest.approx(
        mean_few * (1 + PRIOR_YEARS * 2.0) / (1 / 365.25 + PRIOR_YEARS)
    )
    per_year = (50 + PRIOR_YEARS * 2.0) / (1 / 365.25 + PRIOR_YEARS)
    own = customer_value(many, months=12, prior=prior)[0] / per_year
    assert own == pytest.approx((5000.0 + 30.0) / 53)  # the average purchase, barely shrunk


def test_purchase_history_counts_purchases_before_the_as_of_date(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    plan = cg.plan_features(dataset)
    history = purchase_history(dataset, AS_OF, plan)
    frame = history.to_pandas().set_index("customer_id").sort_index()
    # A bought 50 on 2025-01-10 and 30 on 2025-02-25; B's purchase is after the as-of date
    assert list(frame.index) == ["A"]
    assert frame.loc["A", "purchases"] == 2 and frame.loc["A", "spend"] == 80.0
    assert frame.loc["A", "days"] == (AS_OF - dt.datetime(2025, 1, 10, 12)).days
    prior = purchase_prior(history)
    assert prior == purchase_prior(history.to_pandas())
    assert prior.mean_value == 40.0
    assert prior.per_year == pytest.approx(2 / ((frame.loc["A", "days"] + 1) / 365.25))


def test_without_value_events_there_is_no_history(tmp_path, shop):
    shop["events"]["value"] = None
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    assert purchase_history(dataset, AS_OF, cg.plan_features(dataset)) is None
    assert purchase_prior(pd.DataFrame({"purchases": [], "spend": [], "days": []})) is None


def test_values_at_prices_each_customer_by_their_own_probability(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path / "d", **shop))
    plan = cg.plan_features(dataset)
    frame = pd.DataFrame({"customer_id": ["A", "B", "C"], "mrr": [20.0, 0.0, 20.0]})
    probability = np.array([0.1, 0.1, 0.4])
    value = values_at(dataset, frame, probability, plan=plan, as_of=AS_OF, horizon_days=30)
    months = expected_lifetime_months(probability, 30)
    prior = purchase_prior(purchase_history(dataset, AS_OF, plan))
    history = purchase_history(dataset, AS_OF, plan).to_pandas().set_index("customer_id")
    # A subscribes and bought twice: both count, over A's own lifetime
    a = history.loc["A"]
    years = (a["days"] + 1) / 365.25
    mean_value = (a["spend"] + PRIOR_PURCHASES * prior.mean_value) / (
        a["purchases"] + PRIOR_PURCHASES
    )
    per_year = (a["purchases"] + PRIOR_YEARS * prior.per_year) / (years + PRIOR_YEARS)
    assert value[0] == pytest.approx((20.0 + mean_value * per_year / 12) * months[0])
    # B has no MRR and no purchase yet: the population's buyer over the lifetime
    per_year = PRIOR_YEARS * prior.per_year / (1 / 365.25 + PRIOR_YEARS)
    assert value[1] == pytest.approx(prior.mean_value * per_year * months[1] / 12)
    # C pays what A's charge is but is riskier: worth less
    assert value[2] == pytest.approx(20.0 * months[2]) and value[2] < 20.0 * months[0]
