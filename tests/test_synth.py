"""The simulated business: deterministic, behaviour-driven, plausible."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from churnguard.config import default_interventions, load_effects
from churnguard.contract import load_dataset
from churnguard.errors import ConfigError
from churnguard.synth import generate, true_hazard


@pytest.fixture(scope="module")
def business(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, customers=3_000, days=540, seed=3)
    return out, summary


def test_same_seed_gives_identical_files_and_another_seed_does_not(business, tmp_path):
    out, _ = business
    again = generate(tmp_path / "again", customers=3_000, days=540, seed=3)
    for name, path in again.files.items():
        assert path.read_bytes() == (out / path.name).read_bytes(), name
    other = generate(tmp_path / "other", customers=3_000, days=540, seed=4)
    assert other.files["events"].read_bytes() != (out / "events.parquet").read_bytes()


def test_churners_stop_acting_and_their_subscription_ends(business):
    out, summary = business
    con = duckdb.connect()
    after = con.execute(f"""
        SELECT count(*) FROM '{out}/events.parquet' e
        JOIN (SELECT DISTINCT customer_id, churn_date FROM '{out}/truth.parquet'
              WHERE churn_date IS NOT NULL) t USING (customer_id)
        WHERE CAST(e.timestamp AS DATE) > t.churn_date
    """).fetchall()[0][0]
    assert after == 0
    open_after_churn = con.execute(f"""
        SELECT count(*) FROM '{out}/subscriptions.parquet' s
        JOIN (SELECT DISTINCT customer_id, churn_date FROM '{out}/truth.parquet'
              WHERE churn_date IS NOT NULL) t USING (customer_id)
        WHERE s.end_date IS NULL OR s.end_date > t.churn_date
    """).fetchall()[0][0]
    assert open_after_churn == 0
    assert summary.churned > 0


def test_churn_rate_and_event_mix_are_those_of_a_subscription_business(business):
    out, summary = business
    con = duckdb.connect()
    mix = dict(
        con.execute(f"""
        SELECT event_type, count(*) / sum(count(*)) OVER () FROM '{out}/events.parquet' GROUP BY 1
    """).fetchall()
    )
    assert 0.60 <= mix["login"] <= 0.85
    assert 0.05 <= mix["purchase"] <= 0.25
    assert 0.01 <= mix["support_ticket"] <= 0.08
    assert 0.01 <= mix["nps"] + mix["csat"] <= 0.12
    assert mix["payment_failed"] < 0.03
    monthly = con.execute(f"""
        WITH m AS (SELECT DATE '2024-01-01' + CAST(30 * i AS INTEGER) AS d FROM range(3, 17) t(i)),
        s AS (SELECT * FROM '{out}/subscriptions.parquet'),
        act AS (SELECT DISTINCT m.d, customer_id FROM m JOIN s ON start_date <= m.d
                AND (end_date IS NULL OR end_date > m.d)),
        kept AS (SELECT DISTINCT m.d, customer_id FROM m JOIN s ON start_date <= m.d + 30
                 AND (end_date IS NULL OR end_date > m.d + 30))
        SELECT avg(CASE WHEN kept.customer_id IS NULL THEN 1.0 ELSE 0.0 END)
        FROM act LEFT JOIN kept USING (d, customer_id)
    """).fetchall()[0][0]
    assert 0.02 <= monthly <= 0.08
    per_customer = summary.events / summary.customers
    assert 25 <= per_customer <= 80  # 540 days; about 50 over two years


def test_the_true_hazard_ranks_churners_above_stayers(business):
    """The truth table carries real signal: hazard at a date predicts churn in the next 30 days."""
    out, _ = business
    from sklearn.metrics import roc_auc_score

    con = duckdb.connect()
    frame = con.execute(f"""
        SELECT hazard, (churn_date IS NOT NULL AND churn_date < date + 30)::INT AS churned
        FROM '{out}/truth.parquet' WHERE date = (SELECT min(date) + 364 FROM '{out}/truth.parquet')
    """).df()
    assert 0.65 <= roc_auc_score(frame.churned, frame.hazard) <= 0.95


def test_the_true_engagement_is_what_behaviour_and_hazard_come_from(business):
    """The truth's engagement is the latent the benchmark adds back to measure what the events
    cannot show: the more engaged log in more in the next 30 days and have a lower hazard."""
    out, _ = business
    con = duckdb.connect()
    frame = con.execute(f"""
        WITH day AS (SELECT min(date) + 364 AS d FROM '{out}/truth.parquet')
        SELECT t.engagement, t.hazard, count(e.customer_id) AS logins
        FROM '{out}/truth.parquet' t CROSS JOIN day
        LEFT JOIN '{out}/events.parquet' e
          ON e.customer_id = t.customer_id AND e.event_type = 'login'
         AND e.timestamp >= day.d AND e.timestamp < day.d + 30
        WHERE t.date = day.d
        GROUP BY ALL
    """).df()
    assert len(frame) > 1_000
    assert frame["engagement"].corr(frame["logins"], method="spearman") > 0.3
    assert frame["engagement"].corr(frame["hazard"], method="spearman") < -0.3


# Campaigns: randomised arms with known effects (churnguard.campaigns).


@pytest.fixture(scope="module")
def campaigned(tmp_path_factory):
    """A world with six monthly campaigns under the packaged effects, and the same world (same
    seed) without campaigns."""
    root = tmp_path_factory.mktemp("campaigns")
    generate(root / "plain", customers=20_000, days=540, seed=7)
    summary = generate(root / "with", customers=20_000, days=540, seed=7, campaigns=6)
    return root / "plain", root / "with", summary


def _frame(folder, name):
    return duckdb.connect().execute(f"SELECT * FROM '{folder}/{name}.parquet'").df()


def test_zero_effects_give_exactly_the_outcomes_of_no_campaigns(campaigned, tmp_path):
    plain, _, _ = campaigned
    zero = load_effects()
    zero = replace(
        zero, effects=tuple(replace(e, strength=0.0, backfire=0.0) for e in zero.effects)
    )
    generate(tmp_path, customers=20_000, days=540, seed=7, campaigns=6, effects=zero)
    for name in ("customers", "events", "subscriptions", "labels", "truth"):
        assert (tmp_path / f"{name}.parquet").read_bytes() == (
            plain / f"{name}.parquet"
        ).read_bytes(), name
    assert len(_frame(tmp_path, "treatments")) > 0


def test_treating_some_customers_leaves_everyone_else_exactly_as_they_were(campaigned):
    plain, treated_world, _ = campaigned
    treatments = _frame(treated_world, "treatments")
    treated = set(treatments.loc[treatments["group"] == "treated", "customer_id"])
    before, after = _frame(plain, "events"), _frame(treated_world, "events")
    others = sorted(set(before["customer_id"]) - treated)
    assert len(others) > 5_000
    keep = before["customer_id"].isin(others)
    pd.testing.assert_frame_equal(
        before[keep].reset_index(drop=True),
        after[after["customer_id"].isin(others)].reset_index(drop=True),
    )
    # ... while the treated ones, some of them, lived differently
    assert (
        not before[~keep]
        .reset_index(drop=True)
        .equals(after[~after["customer_id"].isin(others)].reset_index(drop=True))
    )


def test_campaigns_randomise_arms_and_holdout_in_the_shares_set(tmp_path):
    """``arms = "all"``: every intervention equally often, whatever the customer's problem."""
    every = replace(load_effects(), arms="all")
    generate(tmp_path, customers=4_000, days=300, seed=3, campaigns=6, effects=every)
    treatments = _frame(tmp_path, "treatments")
    n = len(treatments)
    share = (treatments["group"] == "holdout").mean()
    assert abs(share - 0.5) < 3 * np.sqrt(0.25 / n)
    arms = treatments["intervention"].value_counts(normalize=True)
    assert set(arms.index) == {e.intervention for e in every.effects}
    assert (abs(arms - 1 / 9) < 3 * np.sqrt((1 / 9) * (8 / 9) / n)).all()
    assert treatments["run_id"].nunique() == 6
    held = treatments["group"] == "holdout"
    assert (treatments.loc[held, "propensity"] == 0.5).all()
    assert np.allclose(treatments.loc[~held, "propensity"], 0.5 / 9)


def test_eligible_arms_go_only_to_customers_with_the_problem_addressed(campaigned):
    """The default design: a billing follow-up only after a failed payment in the last 30
    days, interventions for anyone to all; the propensity is the holdout share, or the treated
    share over the number of arms the customer could have drawn (at least the two for anyone)."""
    _, world, _ = campaigned
    treatments = _frame(world, "treatments")
    failed = (
        duckdb.connect()
        .execute(f"""
        SELECT DISTINCT t.customer_id, t.as_of FROM '{world}/treatments.parquet' t
        JOIN '{world}/events.parquet' e ON e.customer_id = t.customer_id
        WHERE e.event_type = 'payment_failed'
          AND e.timestamp < t.as_of AND e.timestamp >= t.as_of - INTERVAL 32 DAY
    """)
        .df()
        .assign(failed=True)
    )
    decided = treatments.merge(failed, on=["customer_id", "as_of"], how="left")
    decided["failed"] = decided["failed"].fillna(False).astype(bool)
    by_arm = decided.groupby("intervention")["failed"].mean()
    assert by_arm["billing follow-up"] == 1.0
    assert by_arm["loyalty reward or tier upgrade"] == 0.0
    held = treatments["group"] == "holdout"
    assert (treatments.loc[held, "propensity"] == 0.5).all()
    choices = 0.5 / treatments.loc[~held, "propensity"]
    assert np.allclose(choices, choices.round()) and choices.between(1, 7).all()
    assert choices.nunique() > 2


def test_truth_uplift_agrees_with_the_churn_the_simulation_draws(campaigned):
    """The true churn chances are what the simulation realises: a Monte Carlo over thousands
    of customers, treated (churn_with of their arm) and held out (churn_without), each within
    four standard errors; and the measured treated-minus-holdout gap matches the true one."""
    _, world, _ = campaigned
    decisions = _frame(world, "treatments").merge(
        _frame(world, "truth_uplift"), on=["customer_id", "as_of", "intervention"]
    )
    ends = (
        duckdb.connect()
        .execute(f"""
        SELECT customer_id, max(churn_date) AS churn_date FROM '{world}/truth.parquet' GROUP BY 1
    """)
        .df()
    )
    decisions = decisions.merge(ends, on="customer_id", how="left")
    days = (pd.to_datetime(decisions["churn_date"]) - pd.to_datetime(decisions["as_of"])).dt.days
    decisions["churned"] = ((days >= 0) & (days < 30)).astype(float)
    treated = decisions["group"] == "treated"
    decisions["truth"] = np.where(treated, decisions["churn_with"], decisions["churn_without"])
    for group in (treated, ~treated):
        rows = decisions[group]
        error = np.sqrt((rows["truth"] * (1 - rows["truth"])).sum()) / len(rows)
        assert abs(rows["churned"].mean() - rows["truth"].mean()) < 4 * error
    measured = decisions.loc[~treated, "churned"].mean() - decisions.loc[treated, "churned"].mean()
    true = (decisions["churn_without"] - decisions["churn_with"])[treated].mean()
    spread = np.sqrt(2 * 0.06 / (len(decisions) / 2))
    assert abs(measured - true) < 4 * spread


def test_contacts_help_those_with_the_problem_and_can_push_calm_disengaged_ones_away(campaigned):
    _, world, _ = campaigned
    truth = _frame(world, "truth_uplift")
    uplift = truth["churn_without"] - truth["churn_with"]
    by_arm = uplift.groupby(truth["intervention"])
    assert by_arm.max()["support escalation"] > 0.05  # large for a customer with open tickets
    assert (by_arm.min()["proactive check-in call"]) < -0.005  # sleeping dogs
    assert by_arm.min()["support escalation"] >= 0  # no backfire where none is set


def test_campaigns_that_do_not_fit_and_bad_effects_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="do not fit"):
        generate(tmp_path / "a", customers=10, days=120, campaigns=5)
    bad = tmp_path / "effects.toml"
    bad.write_text('[[effects]]\nintervention = "x"\nacts_on = "mood"\nstrength = 0.5\n')
    with pytest.raises(ConfigError, match="acts_on must be one of"):
        load_effects(bad)
    bad.write_text('[[effects]]\nintervention = "x"\nacts_on = "any"\nstrength = 1.5\n')
    with pytest.raises(ConfigError, match="strength must be in"):
        load_effects(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_effects(tmp_path / "missing.toml")


def test_a_campaigned_world_passes_the_data_contract_with_its_treatments(campaigned):
    _, world, _ = campaigned
    dataset = load_dataset(world, interventions=[i.name for i in default_interventions()])
    assert dataset.tables["treatments"].rows == len(_frame(world, "treatments"))


def test_the_truth_reads_engagement_on_the_same_grid_date_as_the_hazard(business):
    out, _ = business
    grid = (
        duckdb.connect()
        .execute(f"""
        SELECT customer_id, CAST(date AS TIMESTAMP) + INTERVAL 3 DAY AS as_of, hazard, engagement
        FROM '{out}/truth.parquet' USING SAMPLE 500 ROWS (reservoir, 1)
    """)
        .df()
    )
    np.testing.assert_allclose(true_hazard(out, grid), grid["hazard"], rtol=1e-6)
    read = true_hazard(out, grid, column="engagement")
    np.testing.assert_allclose(read, grid["engagement"], rtol=1e-6)
    with pytest.raises(ValueError, match="no column 'mood'"):
        true_hazard(out, grid, column="mood")
