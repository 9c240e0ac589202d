"""Choosing and cutting the list: reading only the head of the candidates changes nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnguard.config import InterventionConfig, load_config
from churnguard.interventions import (
    BEST_CASE,
    allocate,
    best_cases,
    build_list,
    choose,
    condition_columns,
)
from conftest import DRIVER_SPECS as SPECS

DAY = dt.date(2025, 1, 20)

ANSWERS = ("login", "support_ticket", "nps", "purchase", "tenure", "*")


class Drivers:
    """A model stand-in whose contributions are given per customer."""

    features = SPECS

    def __init__(self, contributions: pd.DataFrame):
        self.by_customer = contributions

    def contributions(self, rows: pd.DataFrame) -> np.ndarray:
        return self.by_customer.loc[rows["customer_id"]].to_numpy()


@st.composite
def worlds(draw: st.DrawFn) -> tuple[pd.DataFrame, Drivers, tuple[InterventionConfig, ...]]:
    """Customers with features, scores and contributions, and a catalogue; money in cents and
    probabilities in tenths of a percent, so that benefits tie often, before
    rounding to cents and after."""
    n = draw(st.one_of(st.integers(1, 30), st.integers(250, 1500)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = [f"c{i:04d}" for i in rng.permutation(n)]
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "login_trend_30d": rng.uniform(-1, 1, n).round(2),
            "support_ticket_count_30d": rng.integers(0, 4, n).astype(float),
            "last_nps_score": rng.integers(0, 11, n).astype(float),
            "days_since_last_purchase": rng.integers(0, 200, n).astype(float),
            "tenure_days": rng.integers(1, 1000, n).astype(float),
            "churn_probability": rng.integers(0, 1001, n) / 1000,
            "risk_tier": "high",
            "customer_value": rng.choice([0.0, 10.0, 100.0, 250.0, 1000.0, 1001.0], n),
        }
    )
    frame["value_at_risk"] = (frame["churn_probability"] * frame["customer_value"]).round(2)
    contributions = pd.DataFrame(
        rng.normal(0, 1, (n, len(SPECS))).round(1), index=frame["customer_id"]
    )
    catalogue = tuple(
        InterventionConfig(
            f"offer {k}",
            draw(st.sampled_from([0.0, 0.5, 1.0, 5.0, 20.0, 45.0])),
            draw(st.sampled_from([0.01, 0.05, 0.1, 0.3, 0.5])),
            answers=tuple(draw(st.sets(st.sampled_from(ANSWERS), min_size=1, max_size=2))),
            when=draw(st.sampled_from([(), ("tenure_days < 300",), ("customer_value >= 100",)])),
        )
        for k in range(draw(st.integers(1, 4)))
    )
    return frame, Drivers(contributions), catalogue


def _cut(full: pd.DataFrame, top_n: int, budget: float) -> pd.DataFrame:
    """The head of the full ranking under the limits, as the list defines them."""
    head = full.head(top_n) if top_n else full
    if budget:
        head = head[np.cumsum(head["intervention_cost"].to_numpy()) <= budget]
    return head.assign(rank=np.arange(1, len(head) + 1)).reset_index(drop=True)


def _same(listed: pd.DataFrame, expected: pd.DataFrame) -> None:
    if expected.empty:  # nobody worth an intervention: the same empty list either way
        assert listed.empty and list(listed.columns) == list(expected.columns)
    else:
        pd.testing.assert_frame_equal(listed.reset_index(drop=True), expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=worlds(),
    top_n=st.sampled_from([0, 1, 2, 5, 17, 60]),
    budget=st.sampled_from([0.0, 1.0, 20.0, 75.5, 400.0]),
)
def test_the_early_stopped_list_is_the_head_of_the_full_ranking(world, top_n, budget):
    frame, model, catalogue = world
    unlimited = load_config(None)
    limited = load_config(
        None, {"score.top_n": top_n, "score.budget": budget, "score.allocation": "rank"}
    )
    full = choose(frame, frame, model, catalogue, unlimited, as_of=DAY)
    expected = _cut(full, top_n, budget)

    # explaining in batches over everyone ...
    direct = choose(frame, frame, model, catalogue, limited, as_of=DAY)
    _same(direct, expected)

    # ... and reading only a growing head of the candidates, as a nightly run does
    _, best = best_cases(frame, catalogue)
    ranked = frame.assign(**{BEST_CASE: best})
    ranked = ranked[ranked[BEST_CASE] > 0].sort_values(
        [BEST_CASE, "customer_id"], ascending=[False, True]
    )
    reads: list[int] = []

    def head(rows: int) -> pd.DataFrame:
        reads.append(rows)
        return ranked.head(rows) if rows else ranked

    listed = build_list(head, model, catalogue, limited, as_of=DAY)
    _same(listed, expected)
    if budget:
        assert listed["intervention_cost"].sum() <= budget
    if top_n:
        assert len(listed) <= top_n
    assert (listed["expected_benefit"] > 0).all()
    if top_n or (budget and min(i.cost for i in catalogue) > 0):
        assert all(reads)  # with a limit, never the whole population at once


def test_benefits_that_round_to_the_same_cent_are_ranked_by_customer_id_across_batches():
    # 256 customers fill the first batch, all worth 4.62 once rounded; the one customer outside
    # it is worth 4.621, also 4.62, and has the smallest id: it heads the list
    ids = [f"c{i:03d}" for i in range(1, 258)] + ["c000"]
    gains = [4.624] + [4.623] * 256 + [4.621]
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            **{s.name: 1.0 for s in SPECS},
            "churn_probability": np.array(gains) / 1000,
            "risk_tier": "low",
            "customer_value": 1000.0,
            "value_at_risk": 0.0,
        }
    )
    model = Drivers(pd.DataFrame(1.0, index=ids, columns=range(len(SPECS))))
    catalogue = (InterventionConfig("call", 0.0, 1.0, answers=("*",)),)
    listed = choose(
        frame, frame, model, catalogue, load_config(None, {"score.top_n": 1}), as_of=DAY
    )
    assert list(listed["customer_id"]) == ["c000"]
    assert list(listed["expected_benefit"]) == [4.62]


def test_knapsack_takes_two_cheap_wins_where_ranking_takes_one_dear_one():
    """Budget 40; A costs 40 for a benefit of 50; B and C cost 20 for 30 each."""
    cost = np.array([40.0, 20.0])
    net = np.array([[50.0, -np.inf], [-np.inf, 30.0], [-np.inf, 30.0]])
    pick, gain = allocate(net, cost, 40.0, np.array(["A", "B", "C"]))
    assert list(pick) == [-1, 1, 1] and gain.sum() == 60.0

    catalogue = (
        InterventionConfig("dear", 40.0, 0.5, problem=("support_ticket_count_30d >= 1",)),
        InterventionConfig("cheap", 20.0, 0.5, problem=("last_nps_score <= 6",)),
    )
    frame = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            **{s.name: 0.0 for s in SPECS},
            "churn_probability": 0.5,
            "risk_tier": "high",
            "customer_value": [360.0, 200.0, 200.0],  # 0.5 x 360 x 0.5 - 40 = 50; 30 for B, C
            "value_at_risk": 0.0,
        }
    ).assign(support_ticket_count_30d=[1.0, 0.0, 0.0], last_nps_score=[9.0, 3.0, 3.0])
    model = Drivers(pd.DataFrame(0.0, index=frame["customer_id"], columns=range(len(SPECS))))
    for allocation, expected in (("knapsack", ["B", "C"]), ("rank", ["A"])):
        config = load_config(None, {"score.budget": 40.0, "score.allocation": allocation})
        listed = choose(frame, frame, model, catalogue, config, as_of=DAY)
        assert list(listed["customer_id"]) == expected, allocation


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), budget=st.sampled_from([1.0, 20.0, 75.5, 400.0]))
def test_a_knapsack_list_keeps_to_the_budget_and_beats_ranking(world, budget):
    frame, model, catalogue = world
    knapsack = choose(
        frame, frame, model, catalogue, load_config(None, {"score.budget": budget}), as_of=DAY
    )
    ranked = choose(
        frame,
        frame,
        model,
        catalogue,
        load_config(None, {"score.budget": budget, "score.allocation": "rank"}),
        as_of=DAY,
    )
    assert knapsack["intervention_cost"].sum() <= budget
    assert knapsack["customer_id"].is_unique
    assert knapsack["expected_benefit"].sum() >= ranked["expected_benefit"].sum() - 1e-6
    assert (knapsack["expected_benefit"] > 0).all()
    # the list is ranked by benefit, as always
    assert knapsack["expected_benefit"].is_monotonic_decreasing


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), budget=st.sampled_from([0.0, 1.0, 20.0, 75.5, 400.0]))
def test_a_list_read_from_a_few_columns_is_the_list_read_whole(world, budget):
    """Scoring reads every candidate at once (a knapsack, or no limit) with the scores and the
    columns the conditions read, and features only for the customers it explains: the same
    list as from the whole frame."""
    frame, model, catalogue = world
    config = load_config(None, {"score.budget": budget})
    expected = choose(frame, frame, model, catalogue, config, as_of=DAY)
    _, best = best_cases(frame, catalogue)
    ranked = frame.assign(**{BEST_CASE: best})
    ranked = ranked[ranked[BEST_CASE] > 0].sort_values(
        [BEST_CASE, "customer_id"], ascending=[False, True]
    )
    scores = ["customer_id", "churn_probability", "risk_tier", "customer_value", "value_at_risk"]
    narrow = ranked[
        [*scores, BEST_CASE, *(c for c in condition_columns(catalogue) if c not in scores)]
    ]
    read: list[str] = []

    def features_of(ids: np.ndarray) -> pd.DataFrame:
        read.extend(ids)
        return frame.set_index("customer_id").loc[ids].reset_index()

    listed = build_list(
        lambda n: narrow, model, catalogue, config, as_of=DAY, features_of=features_of
    )
    _same(listed, expected.reset_index(drop=True))
    assert set(read) <= set(ranked["customer_id"])
    assert set(listed["customer_id"]) <= set(read)
    assert len(read) == len(set(read))  # each customer's features are read once
