"""Nightly scoring: reasons, interventions, the unattended-run guarantees, drift."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from filelock import FileLock
from rich.console import Console
from typer.testing import CliRunner

import churnguard as cg
from churnguard import cli, drift, evaluation, interventions, logs, scoring, training
from churnguard.cli import app
from churnguard.config import (
    DriftConfig,
    InterventionConfig,
    config_from_dict,
    default_interventions,
    load_config,
    run_catalogue,
)
from churnguard.engine import duckdb as duckdb_engine
from churnguard.features import FeatureSpec
from churnguard.history import contract_loader, earlier_runs
from churnguard.io import sha256_path
from churnguard.reasons import describe, top_drivers
from churnguard.registry import find_model, load_model
from churnguard.spreadsheet import write_csv
from conftest import DRIVER_SPECS as SPECS
from conftest import HALVED, write_learned_effects

runner = CliRunner()
AS_OF = "2025-01-20"
DAY = dt.date(2025, 1, 20)


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """Generated data, a model trained on it and a nightly config: the config's path."""
    root = tmp_path_factory.mktemp("nightly")
    data = root / "data"
    cg.generate(data, customers=3_000, days=420, seed=31)
    registry = root / "models"
    train_cfg = load_config(
        None,
        {
            "data.path": data,
            "model.registry": registry,
            "churn.definition": "subscription",
            "train.start": "2024-04-01",
            "train.end": "2024-12-20",
            "train.every_days": 28,
        },
    )
    cg.train(train_cfg)
    config = root / "nightly.toml"
    config.write_text(
        f'[data]\npath = "{data}"\n[model]\nregistry = "{registry}"\n'
        f'[score]\nout = "{root}/out/{{as_of}}"\ntop_n = 300\n'
    )
    return config


def _score(config, *extra):
    return runner.invoke(app, ["score", "--config", str(config), "--as-of", AS_OF, *extra])


# -- reasons and interventions on hand-made customers whose drivers are known ----------------

CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["unhappy", "lapsing", "new", "fine"],
        "login_trend_30d": [-0.7, -0.2, 0.1, 0.0],
        "support_ticket_count_30d": [2.0, 0.0, 0.0, 0.0],
        "last_nps_score": [3.0, 8.0, np.nan, 10.0],
        "days_since_last_purchase": [10.0, 64.0, 5.0, 3.0],
        "tenure_days": [800.0, 500.0, 20.0, 900.0],
    }
)
# Each row's drivers: what pushes its risk up (positive) or down (negative).
CONTRIBUTIONS = np.array(
    [
        [0.9, 1.2, 0.7, -0.1, -0.2],
        [0.3, -0.1, -0.2, 1.1, -0.1],
        [-0.1, -0.1, 0.2, -0.2, 0.8],
        [-0.3, -0.1, -0.5, -0.2, -0.3],
    ]
)


class KnownDrivers:
    """A model stand-in whose per-customer contributions are the hand-set ones above."""

    features = SPECS

    def contributions(self, rows: pd.DataFrame) -> np.ndarray:
        index = {c: i for i, c in enumerate(CUSTOMERS["customer_id"])}
        return CONTRIBUTIONS[[index[c] for c in rows["customer_id"]]]


def test_reasons_are_the_risk_raising_drivers_in_plain_words():
    reasons = describe(SPECS, CUSTOMERS, top_drivers(CONTRIBUTIONS, SPECS, CUSTOMERS), DAY)
    assert reasons[0] == [
        "2 support tickets in the last 30 days",
        "logins down 70 % on the previous 30 days",
        "last NPS answer 3 (detractor)",
    ]
    assert reasons[1] == [
        "no purchase since 2024-11-17",
        "logins down 20 % on the previous 30 days",
    ]
    assert reasons[2] == ["no NPS answer yet"]  # tenure says who, not what: never a reason
    assert reasons[3] == []  # nothing pushes this customer's risk up


RULE_SPECS = [
    FeatureSpec("days_since_last_payment_failed", "", "recency", event_type="payment_failed"),
    FeatureSpec(
        "payment_failed_count_90d", "", "count", event_type="payment_failed", window_days=90
    ),
    FeatureSpec("purchase_trend_30d", "", "trend", event_type="purchase", window_days=30),
    FeatureSpec(
        "support_ticket_trend_30d", "", "trend", event_type="support_ticket", window_days=30
    ),
    FeatureSpec("login_trend_30d", "", "trend", event_type="login", window_days=30),
    FeatureSpec("country", "", "category", "categorical"),
    FeatureSpec("company_size", "", "number"),
    FeatureSpec("tenure_days", "", "days"),
    FeatureSpec("login_count_90d", "", "count", event_type="login", window_days=90),
    FeatureSpec("days_since_last_login", "", "recency", event_type="login"),
    FeatureSpec("last_nps_score", "", "score", event_type="nps"),
    FeatureSpec("last_csat_score", "", "score", event_type="csat"),
]


def test_only_true_useful_reasons_are_given_one_per_topic():
    customers = pd.DataFrame(
        {
            "days_since_last_payment_failed": [0.6, 300.2],  # late yesterday; ten months ago
            "payment_failed_count_90d": [1.0, 1.0],
            "purchase_trend_30d": [2.0, 2.0],  # purchases up: never a reason
            "support_ticket_trend_30d": [-1.0, -1.0],  # tickets down: never a reason
            "login_trend_30d": [0.0, 0.0],  # flat: never "up 0 %"
            "country": ["DE", "DE"],
            "company_size": [12.0, 12.0],
            "tenure_days": [916.0, 916.0],
            "login_count_90d": [0.0, 0.0],
            "days_since_last_login": [np.nan, np.nan],  # the same topic as the count
            "last_nps_score": [3.0, 3.0],
            "last_csat_score": [1.0, 1.0],  # the same topic as NPS: surveys
        }
    )
    # every feature pushes risk up, the excluded ones most
    contributions = np.tile(np.linspace(2.0, 0.5, len(RULE_SPECS)), (2, 1))
    drivers = top_drivers(contributions, RULE_SPECS, customers)
    reasons = describe(RULE_SPECS, customers, drivers, dt.date(2025, 12, 31))
    assert reasons[0] == [
        "failed payment on 2025-12-30",
        "no logins in the last 90 days",
        "last NPS answer 3 (detractor)",
    ]
    assert reasons[1] == ["no logins in the last 90 days", "last NPS answer 3 (detractor)"]

    # an intervention answering payment reasons goes to yesterday's failure, not last year's
    class Uniform:
        features = RULE_SPECS

        def contributions(self, rows: pd.DataFrame) -> np.ndarray:
            return contributions[: len(rows)]

    payments = (InterventionConfig("payment call", 5.0, 0.4, answers=("payment",)),)
    scores = pd.DataFrame(
        {
            "customer_id": ["yesterday", "last year"],
            "churn_probability": 0.9,
            "risk_tier": "high",
            "customer_value": 1000.0,
            "value_at_risk": 900.0,
        }
    )
    day = dt.date(2025, 12, 31)
    listed = interventions.choose(
        customers, scores, Uniform(), payments, load_config(None), as_of=day
    )
    assert list(listed["customer_id"]) == ["yesterday"]
    assert list(listed["answers"]) == ["failed payment on 2025-12-30"]


CATALOGUE = (
    InterventionConfig("support escalation", 30.0, 0.4, answers=("support_ticket",)),
    InterventionConfig("re-engagement e-mail", 1.0, 0.05, answers=("purchase", "login")),
    InterventionConfig("onboarding help", 20.0, 0.3, when=("tenure_days < 90",)),
    InterventionConfig("big-spender call", 40.0, 0.5, when=("customer_value >= 5000",)),
)


def test_each_customer_gets_the_best_fitting_intervention_and_losers_are_not_listed():
    scores = pd.DataFrame(
        {
            "customer_id": CUSTOMERS["customer_id"],
            "churn_probability": [0.5, 0.4, 0.3, 0.6],
            "risk_tier": ["high", "high", "high", "high"],
            "customer_value": [1000.0, 1000.0, 1000.0, 1000.0],
            "value_at_risk": [500.0, 400.0, 300.0, 600.0],
        }
    )
    listed = interventions.choose(
        CUSTOMERS, scores, KnownDrivers(), CATALOGUE, load_config(None), as_of=DAY
    ).set_index("customer_id")
    # unhappy: escalation 0.5*1000*0.4-30 = 170 beats e-mail 24; the value call does not apply
    assert listed.loc["unhappy", "intervention"] == "support escalation"
    assert listed.loc["unhappy", "expected_benefit"] == pytest.approx(170.0)
    # lapsing: no ticket, old customer: only the e-mail fits, 0.4*1000*0.05-1 = 19
    assert listed.loc["lapsing", "intervention"] == "re-engagement e-mail"
    # new: onboarding 0.3*1000*0.3-20 = 70
    assert listed.loc["new", "intervention"] == "onboarding help"
    # fine: high risk, but no reason pushes it up, so nothing answers it
    assert "fine" not in listed.index
    assert list(listed["rank"]) == [1, 2, 3]
    assert listed["expected_benefit"].is_monotonic_decreasing


def test_an_intervention_with_a_problem_goes_to_who_has_the_problem_now():
    """Reasons do not decide: "fine" has a ticket open now although nothing pushes its risk
    up, so escalation is offered to it; "lapsing", whose reasons name logins, has no ticket
    and is not escalated; a detractor is found by its answer, a missing answer is no problem."""
    catalogue = (
        InterventionConfig(
            "support escalation", 30.0, 0.4, problem=("support_ticket_count_30d >= 1",)
        ),
        InterventionConfig("feedback survey", 3.0, 0.1, problem=("last_nps_score <= 6",)),
    )
    customers = CUSTOMERS.assign(support_ticket_count_30d=[2.0, 0.0, 0.0, 1.0])
    scores = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "churn_probability": 0.5,
            "risk_tier": "high",
            "customer_value": 1000.0,
            "value_at_risk": 500.0,
        }
    )
    listed = interventions.choose(
        customers, scores, KnownDrivers(), catalogue, load_config(None), as_of=DAY
    ).set_index("customer_id")
    assert listed["intervention"].to_dict() == {
        "unhappy": "support escalation",
        "fine": "support escalation",
    }
    only_survey = interventions.choose(
        customers, scores, KnownDrivers(), catalogue[1:], load_config(None), as_of=DAY
    )
    assert list(only_survey["customer_id"]) == ["unhappy"]  # NPS 3; "new" has no answer yet


def test_top_n_and_budget_cut_the_ranked_list():
    scores = pd.DataFrame(
        {
            "customer_id": CUSTOMERS["customer_id"],
            "churn_probability": [0.5, 0.4, 0.3, 0.6],
            "risk_tier": "high",
            "customer_value": 1000.0,
            "value_at_risk": 0.0,
        }
    )
    cut = load_config(None, {"score.top_n": 2})
    assert (
        len(interventions.choose(CUSTOMERS, scores, KnownDrivers(), CATALOGUE, cut, as_of=DAY))
        == 2
    )
    # in rank order: 30 (escalation) fits, the next, +20 (onboarding), does not: the list stops
    ranked = load_config(None, {"score.budget": 40.0, "score.allocation": "rank"})
    listed = interventions.choose(CUSTOMERS, scores, KnownDrivers(), CATALOGUE, ranked, as_of=DAY)
    assert list(listed["customer_id"]) == ["unhappy"]
    # the knapsack also buys lapsing's e-mail (1) with the 10 left: 170 + 19
    budget = load_config(None, {"score.budget": 40.0})
    listed = interventions.choose(CUSTOMERS, scores, KnownDrivers(), CATALOGUE, budget, as_of=DAY)
    assert list(listed["customer_id"]) == ["unhappy", "lapsing"]


def test_cells_a_spreadsheet_would_run_are_neutralised(tmp_path):
    frame = pd.DataFrame(
        {c: ["x"] for c in scoring.LIST_COLUMNS}
        | {
            "customer_id": ['=HYPERLINK("http://evil")'],
            "reason_1": ["-2+3"],
            "reason_2": ["@SUM(A1)"],
        }
    )
    write_csv(frame, tmp_path / "list.csv")
    text = (tmp_path / "list.csv").read_text()
    assert "'=HYPERLINK" in text and ",'-2+3," in text and ",'@SUM(A1)," in text
    numbers = frame.assign(customer_id=["-1001"], reason_1=["+4930123"], reason_2=["-2.5"])
    write_csv(numbers, tmp_path / "ids.csv")  # a number runs nothing: the id stays joinable
    assert pd.read_csv(tmp_path / "ids.csv", dtype=str).iloc[0][
        ["customer_id", "reason_1", "reason_2"]
    ].tolist() == ["-1001", "+4930123", "-2.5"]


def test_the_list_as_a_workbook_and_with_semicolons(nightly, tmp_path):
    config = tmp_path / "sheet.toml"
    config.write_text(
        nightly.read_text().replace(
            "[score]\n", '[score]\nxlsx = true\ncsv_separator = ";"\ncurrency = "€"\n'
        )
    )
    result = _score(config, "--out", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "out" / "interventions.csv", sep=";", decimal=",")
    assert list(listed.columns) == list(scoring.LIST_COLUMNS)
    assert listed["churn_probability"].between(0, 1).all()
    book = openpyxl.load_workbook(tmp_path / "out" / "interventions.xlsx")
    sheet = book["interventions"]
    header = [c.value for c in sheet[1]]
    assert header == list(scoring.LIST_COLUMNS)
    p = header.index("churn_probability") + 1
    cells = [sheet.cell(row=r, column=p) for r in range(2, len(listed) + 2)]
    assert [c.value for c in cells] == pytest.approx(listed["churn_probability"].tolist())
    assert all("%" in c.number_format for c in cells)
    money = sheet.cell(row=2, column=header.index("expected_benefit") + 1)
    assert "€" in money.number_format and money.value == pytest.approx(
        listed["expected_benefit"][0]
    )
    ids = [sheet.cell(row=r, column=2).value for r in range(2, len(listed) + 2)]
    assert ids == listed["customer_id"].astype(str).tolist()
    explained = {r[0].value: r[1].value for r in book["columns"].iter_rows(min_row=2)}
    assert set(explained) == set(header) and all(explained.values())


def test_the_nightly_catalogue_is_the_packaged_default():
    nightly = tomllib.loads(open("pipelines/nightly.toml", encoding="utf-8").read())
    packaged = default_interventions()
    assert load_config("pipelines/nightly.toml").interventions == packaged
    assert len(nightly["interventions"]) >= 8


# -- the unattended run --------------------------------------------------------------------


def test_a_nightly_run_scores_everyone_and_a_rerun_gives_the_same_bytes(nightly, tmp_path):
    first = _score(nightly, "--out", str(tmp_path / "a"), "--quiet")
    assert first.exit_code == 0, first.output
    assert first.stdout == ""  # --quiet: nothing on stdout for cron
    second = _score(nightly, "--out", str(tmp_path / "b"))
    assert second.exit_code == 0, second.output
    for name in ("interventions.csv", "assignments.csv", "scores.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ab"]
    for m in manifests:
        m.pop("timings")
    assert manifests[0] == manifests[1]

    scores = pd.read_parquet(tmp_path / "a" / "scores.parquet")
    assert list(scores.columns) == list(scoring.SCORE_COLUMNS)
    subs = pd.read_parquet(nightly.parent / "data" / "subscriptions.parquet")
    active = subs[
        (subs["start_date"] < pd.Timestamp(AS_OF).date())
        & (subs["end_date"].isna() | (subs["end_date"] >= pd.Timestamp(AS_OF).date()))
    ]
    assert set(scores["customer_id"]) == set(active["customer_id"])
    listed = pd.read_csv(tmp_path / "a" / "interventions.csv")
    assert list(listed.columns) == list(scoring.LIST_COLUMNS)
    assert 0 < len(listed) <= 300
    assert (listed["expected_benefit"] > 0).all() and listed[
        "expected_benefit"
    ].is_monotonic_decreasing
    assert listed["reason_1"].str.len().gt(0).all()
    manifest = manifests[0]
    decisions = pd.read_csv(tmp_path / "a" / "assignments.csv")
    held_out = decisions[decisions["group"] == "holdout"]
    assert manifest["rows"] == {
        "scored": len(scores),
        "listed": len(listed),
        "held_out": len(held_out),
    }
    # the contacted are the treated decisions, in list order; the holdout is on no list
    treated = decisions[decisions["group"] == "treated"]
    assert list(treated["customer_id"]) == list(listed["customer_id"])
    assert list(listed["rank"]) == list(range(1, len(listed) + 1))
    assert 0 < len(held_out) < len(decisions) / 3
    assert set(decisions["run_id"]) == {manifest["run_id"]}
    assert manifest["drift"]["score"] < DriftConfig().threshold
    # customers have aged since the training snapshots: tenure drifts by construction, so it
    # is measured but not named, and nothing else drifted
    assert manifest["drift"]["features"]["tenure_days"] > DriftConfig().threshold
    assert manifest["drift"]["over_threshold"] == {} and manifest["warnings"] == []
    assert "scored" in second.output and "interventions.csv" in second.output


def test_drift_limits_name_what_a_team_asks_for(nightly, tmp_path):
    """A limit of its own makes a feature that grows with time count; ``ignore`` silences
    one; a limit that is not above zero is refused in one line."""
    config = tmp_path / "drift.toml"
    config.write_text(
        nightly.read_text()
        + "[drift]\nthreshold = 0.0001\nthresholds = { tenure_days = 0.1 }\n"
        + 'ignore = ["mrr"]\n'
    )
    result = _score(config, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    named = manifest["drift"]["over_threshold"]
    assert "tenure_days" in named and "mrr" not in named
    assert "subscription_tenure_days" not in named  # grows with time, no limit of its own
    assert manifest["drift"]["thresholds"]["tenure_days"] == 0.1
    assert (
        f"feature tenure_days drifted: PSI {named['tenure_days']:.3f} against the training data "
        "(over 0.1)"
    ) in manifest["warnings"]
    config.write_text(nightly.read_text() + "[drift]\nthresholds = { mrr = 0 }\n")
    refused = _score(config, "--out", str(tmp_path / "again"))
    assert refused.exit_code == 2
    assert "drift threshold for mrr must be above 0" in refused.output
    assert not (tmp_path / "again").exists()


def test_only_customers_likely_enough_and_in_the_tiers_asked_for_are_listed(nightly, tmp_path):
    everyone = _score(nightly, "--out", str(tmp_path / "all"))
    assert everyone.exit_code == 0, everyone.output
    before = pd.read_csv(tmp_path / "all" / "interventions.csv")
    assert set(before["risk_tier"]) >= {"low", "medium"}  # the default lists every tier
    config = tmp_path / "cut.toml"
    config.write_text(nightly.read_text() + 'min_probability = 0.08\ntiers = ["medium", "high"]\n')
    result = _score(config, "--out", str(tmp_path / "cut"))
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "cut" / "interventions.csv")
    assert len(listed) > 0
    assert (listed["churn_probability"] >= 0.08).all()
    assert set(listed["risk_tier"]) <= {"medium", "high"}
    kept = before[(before["churn_probability"] >= 0.08) & (before["risk_tier"] != "low")]
    assert set(kept["customer_id"]) <= set(listed["customer_id"])  # nobody else lost a place
    config.write_text(nightly.read_text() + 'tiers = ["urgent"]\n')
    refused = _score(config, "--out", str(tmp_path / "bad"))
    assert refused.exit_code == 2 and "score.tiers must be one of" in refused.output
    assert not (tmp_path / "bad").exists()


def test_a_failed_write_leaves_no_file(nightly, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(duckdb_engine.pq.ParquetWriter, "write_batch", broken)
    result = _score(nightly, "--out", str(tmp_path), "-q")
    assert result.exit_code == 1
    assert "OSError: disk full" in result.output and len(result.output.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_a_second_run_on_the_same_folder_fails_clearly(nightly, tmp_path):
    with FileLock(scoring.lock_path(tmp_path / "out")):
        result = _score(nightly, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "another churnguard score run is writing here" in result.output


def test_a_tampered_model_exits_3_and_bad_input_exits_2(nightly, tmp_path):
    missing = _score(nightly, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert missing.exit_code == 2 and "dataset folder does not exist" in missing.output
    (booster,) = (nightly.parent / "models" / "churn").glob("*/booster.txt")
    original = booster.read_bytes()
    booster.write_bytes(original + b"\n")
    try:
        tampered = _score(nightly, "--out", str(tmp_path))
    finally:
        booster.write_bytes(original)
    assert tampered.exit_code == 3 and "sha256 differs" in tampered.output
    assert not (tmp_path / "interventions.csv").exists()
    bad_input = _score(nightly, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert bad_input.exit_code == 2 and not (tmp_path / "o").exists()  # nothing half-written


def test_a_model_is_refused_on_data_without_its_features(nightly, tmp_path):
    data = nightly.parent / "data"
    for table in ("customers", "subscriptions"):
        pd.read_parquet(data / f"{table}.parquet").to_parquet(tmp_path / f"{table}.parquet")
    events = pd.read_parquet(data / "events.parquet")
    events[events["event_type"] != "csat"].to_parquet(tmp_path / "events.parquet")
    result = _score(nightly, "--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 3 and "last_csat_score" in result.output


def test_precomputed_features_give_the_same_list(nightly, tmp_path):
    features = tmp_path / "features.parquet"
    built = runner.invoke(
        app,
        ["features", "--config", str(nightly), "--as-of", AS_OF, "--out", str(features)]
        + ["--as-of", "2024-12-01"],
    )
    assert built.exit_code == 0, built.output
    direct = _score(nightly, "--out", str(tmp_path / "a"), "--quiet")
    stored = _score(nightly, "--out", str(tmp_path / "b"), "--quiet", "--features", str(features))
    assert direct.exit_code == stored.exit_code == 0, stored.output
    for name in ("interventions.csv", "scores.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # the same decisions; the run ids differ, as the features file is one of the run's inputs
    a, b = (pd.read_csv(tmp_path / d / "assignments.csv") for d in "ab")
    assert a["run_id"].iloc[0] != b["run_id"].iloc[0]
    pd.testing.assert_frame_equal(a.drop(columns="run_id"), b.drop(columns="run_id"))


def test_scoring_in_customer_ranges_writes_the_same_files(nightly, tmp_path, monkeypatch):
    """A population too large for the engine's memory is scored range by range, as the
    feature file is built: the files are those of one pass."""
    whole = _score(nightly, "--out", str(tmp_path / "a"), "--quiet")
    asked = []

    def three(self, rows, columns):
        asked.append(rows)
        return 3  # as a tight memory limit would ask

    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "pieces", three)
    split = _score(nightly, "--out", str(tmp_path / "b"), "--quiet")
    assert whole.exit_code == split.exit_code == 0, split.output
    assert asked  # the ranges were asked for
    for name in ("interventions.csv", "scores.parquet", "assignments.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_shifted_feature_is_named_as_drift():
    rng = np.random.default_rng(0)
    spec = [FeatureSpec("logins", "", "count"), FeatureSpec("plan", "", "category", "categorical")]
    train = pd.DataFrame({"logins": rng.poisson(10, 5000), "plan": rng.choice(["a", "b"], 5000)})
    ref = drift.reference(train, spec, rng.uniform(size=5000))
    same = drift.stability(ref, train, rng.uniform(size=5000))
    assert max(same.values()) < 0.01
    shifted = train.assign(logins=train["logins"] // 3, plan="c")
    moved = drift.stability(ref, shifted, rng.uniform(size=5000))
    assert moved["logins"] > 0.25 and moved["plan"] > 0.25


def test_benefit_ranking_keeps_more_true_expected_value_than_probability_ranking(
    nightly, tmp_path
):
    """In three simulated businesses, the list ranked by expected benefit keeps more value in
    expectation under the simulation's true hazard than the list ranked by probability, at the
    same number of contacts and the same assumed success rate; and the backtest labels its
    own saving an assumption, with a bootstrap interval around it."""
    (folder,) = (nightly.parent / "models" / "churn").glob("2*")
    gains = []
    for seed in (41, 42, 43):
        world = tmp_path / str(seed)
        cg.generate(world, customers=3_000, days=420, seed=seed)
        ev = cg.evaluate(folder, world, as_of="2025-01-10").evaluation
        known = ~np.isnan(ev.true_hazard)
        churn = 1 - (1 - ev.true_hazard[known]) ** 30  # the horizon, at today's hazard
        value = ev.customer_value[known]
        c = ev.campaign
        lists = evaluation.ranked_lists(
            ev.probability[known],
            value,
            cost=c.intervention_cost,
            success_rate=c.success_rate,
            contacts=known.sum() // 10,
        )
        kept = {
            name: float(
                (churn[top] * value[top]).sum() * c.success_rate - top.size * c.intervention_cost
            )
            for name, top in lists.items()
        }
        gains.append(kept["by_expected_benefit"] - kept["by_probability"])
        r = ev.ranking
        assert r["basis"] == "assumed success rate"
        assert r["difference_low"] <= r["difference"] <= r["difference_high"]
    assert all(g > 0 for g in gains)


def test_explaining_only_the_best_cases_gives_the_head_of_the_full_list(nightly, tmp_path):
    everyone = scoring.score(
        load_config(nightly, {"score.top_n": 0, "score.holdout": 0.0}),
        as_of=AS_OF,
        out=tmp_path / "all",
    ).interventions
    head = scoring.score(
        load_config(nightly, {"score.top_n": 25, "score.holdout": 0.0}),
        as_of=AS_OF,
        out=tmp_path / "head",
    ).interventions
    assert len(everyone) > 256  # more than the first batch, so the early stop is exercised
    pd.testing.assert_frame_equal(head, everyone.head(25))


def test_model_names_versions_and_pointers_stay_inside_the_registry(nightly, tmp_path):
    registry = nightly.parent / "models"
    (bundle,) = (registry / "churn").glob("2*")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(bundle, elsewhere)
    out = tmp_path / "out"
    for model, message in (
        ("../../elsewhere", "../../elsewhere: no such model folder"),
        ("..", "model version '..': expected a version name"),
        (".hidden", "model version '.hidden': expected a version name"),
    ):
        result = _score(nightly, "--model", model, "--out", str(out))
        assert result.exit_code == 3 and message in result.output, result.output
    pointer = registry / "churn" / "champion"
    original = pointer.read_text()
    pointer.write_text(f"../../../{elsewhere.relative_to(tmp_path.parent)}\n")
    try:
        result = _score(nightly, "--out", str(out))
    finally:
        pointer.write_text(original)
    assert result.exit_code == 3 and "champion: expected one version name" in result.output
    for name in ("../../x", "", "a/b", ".x"):
        config = tmp_path / "named.toml"
        config.write_text(nightly.read_text().replace("[model]\n", f'[model]\nname = "{name}"\n'))
        result = _score(config, "--out", str(out))
        assert result.exit_code == 2 and "model.name" in result.output, result.output
    assert not out.exists() and not (registry.parent.parent / "x").exists()


def test_ids_with_terminal_escapes_are_printed_escaped_and_written_unchanged(nightly, tmp_path):
    data = nightly.parent / "data"
    prefix = "\x1b[2J\x1b[31m"
    for table in ("customers", "events", "subscriptions"):
        frame = pd.read_parquet(data / f"{table}.parquet")
        frame["customer_id"] = prefix + frame["customer_id"].astype(str)
        frame.to_parquet(tmp_path / f"{table}.parquet")
    result = _score(nightly, "--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\\x1b[2J" in result.output
    listed = pd.read_csv(tmp_path / "out" / "interventions.csv", dtype=str)
    assert listed["customer_id"].str.startswith(prefix).all()
    validated = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert validated.exit_code == 0 and "\x1b" not in validated.output


def test_ids_that_would_break_a_row_are_quoted_and_neutralised(tmp_path):
    ids = ["\rX", "Y\nZ", "＝SUM(A1)", 'a,"b"', "plain"]
    frame = pd.DataFrame(
        {c: ["x"] * len(ids) for c in scoring.LIST_COLUMNS} | {"customer_id": ids}
    )
    write_csv(frame, tmp_path / "list.csv")
    back = pd.read_csv(tmp_path / "list.csv", dtype=str, keep_default_na=False)
    assert list(back["customer_id"]) == ["'\rX", "Y\nZ", "'＝SUM(A1)", 'a,"b"', "plain"]
    assert len(back) == len(ids)


def test_an_out_folder_holding_other_files_is_refused_untouched(nightly, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = _score(nightly, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "holds notes.txt besides a scoring run" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_symlink_to_the_out_folder_shares_its_lock(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert scoring.lock_path(tmp_path / "link") == scoring.lock_path(tmp_path / "real")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("budget", "nan", "score.budget must be a finite number"),
        ("budget", "-1", "score.top_n and score.budget must be >= 0"),
        ("lock_timeout", "-1", "score.lock_timeout must be >= 0 seconds"),
        ("lock_timeout", "inf", "score.lock_timeout must be a finite number"),
        ("holdout", "1", "score.holdout must be a share from 0 to below 1, got 1.0"),
        ("holdout", "-0.1", "score.holdout must be a share from 0 to below 1"),
    ],
)
def test_score_settings_out_of_range_exit_2(nightly, tmp_path, key, value, message):
    config = tmp_path / "bad.toml"
    config.write_text(nightly.read_text().replace("[score]\n", f"[score]\n{key} = {value}\n"))
    result = _score(config, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def _complete(out: Path) -> bool:
    """Whether ``out`` holds exactly one run whose manifest matches its files."""
    if sorted(p.name for p in out.iterdir()) != sorted(scoring.RUN_FILES):
        return False
    manifest = json.loads((out / "manifest.json").read_text())
    return all(sha256_path(out / name) == digest for name, digest in manifest["outputs"].items())


def test_a_run_killed_at_any_moment_leaves_the_previous_run_or_the_new_one(nightly, tmp_path):
    out = tmp_path / "out"
    assert _score(nightly, "--out", str(out)).exit_code == 0
    first = (out / "manifest.json").read_text()
    rng = np.random.default_rng(4)
    command = [sys.executable, "-c", "from churnguard.cli import app; app()", "score"]
    command += ["--config", str(nightly)]
    command += ["--as-of", AS_OF, "--out", str(out), "--quiet"]
    for delay in rng.uniform(0.5, 6.0, 6):
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        if out.exists():
            assert _complete(out)
        else:  # killed between the two renames: the previous run waits beside it
            (old,) = tmp_path.glob(".out.*.old")
            assert _complete(old)
            return
    assert _score(nightly, "--out", str(out)).exit_code == 0 and _complete(out)
    assert (
        json.loads(first)["outputs"] == json.loads((out / "manifest.json").read_text())["outputs"]
    )


def test_a_features_file_that_does_not_fit_the_data_is_refused(nightly, tmp_path):
    built = tmp_path / "features.parquet"
    data = str(nightly.parent / "data")
    args = ["features", "--data", data, "--as-of", AS_OF, "--out", str(built)]
    assert runner.invoke(app, args).exit_code == 0
    frame = pd.read_parquet(built)
    frame.iloc[::2].to_parquet(tmp_path / "half.parquet")
    pd.concat([frame, frame]).to_parquet(tmp_path / "twice.parquet")
    (tmp_path / "garbage.parquet").write_text("not parquet")
    for name, message in (
        ("missing.parquet", "missing.parquet: features file not found"),
        ("garbage.parquet", "garbage.parquet: cannot be read as Parquet"),
        ("half.parquet", "half.parquet: lacks"),
        ("twice.parquet", "twice.parquet: holds"),
    ):
        out = tmp_path / f"out-{name}"
        result = _score(nightly, "--features", str(tmp_path / name), "--out", str(out))
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()


def test_a_condition_on_a_misspelt_feature_is_refused(nightly, tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text(
        nightly.read_text()
        + '[[interventions]]\nname = "onboarding help"\ncost = 10\nsuccess_rate = 0.2\n'
        + 'when = ["tenure_day < 90"]\n'
    )
    result = _score(config, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert (
        "condition 'tenure_day < 90' is on 'tenure_day', which is not a feature" in result.output
    )
    assert not (tmp_path / "out").exists()


def test_doubtful_data_is_scored_with_counted_warnings(nightly, tmp_path):
    data = nightly.parent / "data"
    customers = pd.read_parquet(data / "customers.parquet")
    events = pd.read_parquet(data / "events.parquet")
    subscriptions = pd.read_parquet(data / "subscriptions.parquet")
    active = subscriptions[subscriptions["end_date"].isna()]["customer_id"].unique()[:3]
    late = customers["customer_id"].isin(active)
    customers.loc[late, "signup_date"] = pd.Timestamp("2025-06-01").date()
    purchases = events.index[events["event_type"] == "purchase"][:4]
    events.loc[purchases, "value"] = -events.loc[purchases, "value"]
    for name, frame in (
        ("customers", customers),
        ("events", events),
        ("subscriptions", subscriptions),
    ):
        frame.to_parquet(tmp_path / f"{name}.parquet")
    result = _score(nightly, "--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    warnings = json.loads((tmp_path / "out" / "manifest.json").read_text())["warnings"]
    before = int((events["customer_id"].isin(active)).sum())
    assert (
        f"3 customers in the population at {AS_OF} have a signup_date on or after it"
        in (warnings[0])
    )
    assert "events: 4 rows with a negative value (refunds?)" in warnings[1]
    assert warnings[2] == f"events: {before:,} rows dated before their customer's signup_date"
    stale = _score(nightly, "--as-of", "2025-09-01", "--out", str(tmp_path / "late"))
    assert stale.exit_code == 0, stale.output
    notes = json.loads((tmp_path / "late" / "manifest.json").read_text())["warnings"]
    assert notes[0].startswith("scoring at 2025-09-01,") and "is the export stale?" in notes[0]


def test_the_api_writes_to_the_config_s_out_folder_with_the_date_filled_in(nightly, tmp_path):
    config = load_config(nightly, {"score.out": str(tmp_path / "runs" / "{as_of}")})
    run = cg.score(config, as_of=AS_OF)
    assert run.out == tmp_path / "runs" / AS_OF
    assert (tmp_path / "runs" / AS_OF / "manifest.json").exists()


def test_evaluate_reads_the_config_s_per_table_paths(nightly, tmp_path):
    data = nightly.parent / "data"
    (tmp_path / "d").mkdir()
    for table in ("customers", "subscriptions"):
        shutil.copy(data / f"{table}.parquet", tmp_path / "d" / f"{table}.parquet")
    shutil.copy(data / "events.parquet", tmp_path / "events-elsewhere.parquet")
    config = tmp_path / "split.toml"
    config.write_text(
        nightly.read_text().replace(
            f'path = "{data}"',
            f'path = "{tmp_path / "d"}"\nevents = "{tmp_path / "events-elsewhere.parquet"}"',
        )
    )
    result = runner.invoke(
        app, ["evaluate", "-c", str(config), "--as-of", "2025-01-01", "--engine", "duckdb"]
    )
    assert result.exit_code == 0, result.output
    assert "model ROC-AUC / ECE" in result.output


def test_outcomes_label_the_decisions_of_past_nightly_runs(nightly, tmp_path):
    """Two nights and a re-run of one: every decision once, labelled at its own date, the
    propensity taken from each run's holdout share, and the lists' risk against what came."""
    runs = tmp_path / "runs"
    for as_of, folder in (("2024-12-20", "a"), (AS_OF, "b"), (AS_OF, "b-again")):
        done = runner.invoke(
            app, ["score", "-c", str(nightly), "--as-of", as_of, "--out", str(runs / folder), "-q"]
        )
        assert done.exit_code == 0, done.output
    decided = pd.concat(pd.read_csv(runs / f / "assignments.csv") for f in "ab")

    def outcomes(out):
        return runner.invoke(
            app, ["outcomes", "-c", str(nightly), "--scores", str(runs), "--out", str(out)]
        )

    outcome = outcomes(tmp_path / "l.parquet")
    assert outcome.exit_code == 0, outcome.output
    assert "is the list still right?" in outcome.output
    log = pd.read_parquet(tmp_path / "l.parquet")
    assert len(log) == len(decided)  # listed customers are all in the population
    assert sorted(log["as_of"].astype(str).unique()) == ["2024-12-20", AS_OF]
    expected = np.where(log["group"] == "holdout", 0.1, 0.9)
    np.testing.assert_allclose(log["propensity"], expected)
    assert log["churned"].isin([0, 1]).all() and 0 < log["churned"].mean() < 0.5

    clash = runs / "b-again" / "assignments.csv"
    pd.read_csv(clash).assign(run_id="another-run").to_csv(clash, index=False)
    refused = outcomes(tmp_path / "m.parquet")
    assert refused.exit_code == 2
    assert "decisions of two runs" in refused.output
    assert not (tmp_path / "m.parquet").exists()


def test_learned_effects_choose_who_and_what_and_say_so(nightly, tmp_path):
    effects = tmp_path / "effects.json"
    write_learned_effects(effects, promote=True)
    config = tmp_path / "learned.toml"
    config.write_text(
        nightly.read_text() + f'effects = "learned"\neffects_path = "{effects}"\nholdout = 0.0\n'
    )
    result = _score(config, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "out" / "interventions.csv")
    assert list(listed.columns) == list(scoring.LIST_COLUMNS)
    assert set(listed["intervention"]) == {"billing follow-up"}
    assert set(listed["effect_source"]) == {"learned"}
    p = listed["churn_probability"].to_numpy()
    uplift = p - 1 / (1 + np.exp(-(np.log(p / (1 - p)) + HALVED)))
    np.testing.assert_allclose(
        listed["expected_benefit"], uplift * listed["customer_value"] - 5.0, atol=0.02
    )
    data = cg.load_dataset(nightly.parent / "data", definition="subscription")
    frame = cg.build_features(data, as_of=[AS_OF]).to_pandas()
    failed = set(frame.loc[frame["payment_failed_count_30d"] >= 1, "customer_id"])
    assert 0 < len(listed) <= 300 and set(listed["customer_id"]) <= failed
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["effects"]["source"] == "learned"


def test_effects_that_were_not_promoted_are_not_used(nightly, tmp_path):
    effects = tmp_path / "effects.json"
    write_learned_effects(effects, promote=False)
    config = tmp_path / "learned.toml"
    config.write_text(nightly.read_text() + f'effects = "learned"\neffects_path = "{effects}"\n')
    result = _score(config, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "out" / "interventions.csv")
    assert set(listed["effect_source"]) == {"assumed"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["effects"]["source"] == "assumed"
    assert any("were not promoted" in w for w in manifest["warnings"])
    effects.write_text('{"format": 1, "promote": "yes"}')
    refused = _score(config, "--out", str(tmp_path / "again"))
    assert refused.exit_code == 2 and "effects.json" in refused.output
    assert not (tmp_path / "again").exists()


def test_json_logs_parse_line_by_line_and_carry_the_run_id_of_the_manifest(nightly, tmp_path):
    out = tmp_path / "night"
    result = _score(nightly, "--out", str(out), "--log-format", "json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {line["run_id"] for line in lines} == {manifest["run_id"]}
    assert all(list(line) == list(logs.FIELDS) for line in lines)
    assert {line["command"] for line in lines} == {"score"}
    ended = {line["stage"]: line for line in lines if line["seconds"] is not None}
    assert {"loading the model", "scoring", "writing", "score"} <= set(ended)
    assert ended["scoring"]["rows"] == manifest["rows"]["scored"]
    assert manifest["status"] == ("warnings" if manifest["warnings"] else "ok")
    assert manifest["config_path"] == str(nightly) and manifest["churnguard"]
    failed = _score(nightly, "--out", str(out), "--log-format", "json", "--model", "nope")
    assert failed.exit_code == 3
    (error,) = (
        line for line in map(json.loads, failed.stderr.splitlines()) if line["level"] == "ERROR"
    )
    assert error["message"].endswith("nope: no such model version")


def _nights(nightly, tmp_path, *extra: str, nights: int = 3) -> list[pd.DataFrame]:
    """Consecutive nights (up to three) into one out root, with ``extra`` [score] settings."""
    config = tmp_path / "nights.toml"
    config.write_text(
        nightly.read_text()
        .replace("[score]\n", f"[score]\n{''.join(extra)}", 1)
        .replace(f'out = "{nightly.parent}/out/{{as_of}}"', f'out = "{tmp_path}/root/{{as_of}}"')
    )
    lists = []
    for night in ("2025-01-20", "2025-01-21", "2025-01-22")[:nights]:
        result = runner.invoke(app, ["score", "-c", str(config), "--as-of", night, "-q"])
        assert result.exit_code == 0, result.output
        lists.append(pd.read_csv(tmp_path / "root" / night / "interventions.csv", dtype=str))
    return lists


def test_a_list_says_who_is_new_since_when_and_carries_the_customer_columns(nightly, tmp_path):
    first, second, third = _nights(nightly, tmp_path, 'carry = ["country", "company_size"]\n')
    assert list(first.columns) == [*scoring.LIST_COLUMNS, "country", "company_size"]
    assert (first["new"] == "True").all() and (first["first_listed"] == "2025-01-20").all()
    assert (second["as_of"] == "2025-01-21").all()
    before = set(first["customer_id"])
    assert list(second["new"] == "True") == [c not in before for c in second["customer_id"]]
    both = set(second["customer_id"])
    since = {
        c: "2025-01-20"
        if c in both and c in before
        else "2025-01-21"
        if c in both
        else "2025-01-22"
        for c in third["customer_id"]
    }
    assert dict(zip(third["customer_id"], third["first_listed"], strict=True)) == since
    assert 0 < (third["new"] == "False").sum() < len(third)  # the same people, and new ones
    customers = pd.read_parquet(nightly.parent / "data" / "customers.parquet").set_index(
        "customer_id"
    )
    carried = third.set_index("customer_id")
    assert (carried["country"] == customers.loc[carried.index, "country"]).all()
    assert (
        carried["company_size"].astype(int) == customers.loc[carried.index, "company_size"]
    ).all()


def test_a_customer_contacted_within_the_cooldown_is_not_listed_again(nightly, tmp_path):
    first, second = _nights(nightly, tmp_path, "cooldown_days = 2\n", nights=2)
    assert not set(second["customer_id"]) & set(first["customer_id"])
    decided = [
        pd.read_csv(tmp_path / "root" / night / "assignments.csv", dtype=str)
        for night in ("2025-01-20", "2025-01-21")
    ]
    assert len(decided[0]) == len(decided[1]) == 300  # the places freed go to the next ones
    assignments = decided[0]
    held_out = set(assignments.loc[assignments["group"] == "holdout", "customer_id"])
    assert held_out & set(second["customer_id"])  # a holdout was not contacted: it may return


def test_earlier_runs_as_written_are_read_as_the_contract_reads_them(nightly, tmp_path):
    _nights(nightly, tmp_path)
    tonight = dt.date(2025, 1, 23)
    runs = earlier_runs(tmp_path / "root" / tonight.isoformat(), tonight)
    assert [r.as_of.isoformat() for r in runs] == ["2025-01-22", "2025-01-21", "2025-01-20"]
    assert all(r.as_written for r in runs)
    config = load_config(nightly)
    load = contract_loader(cg.load_dataset(config.data), [i.name for i in run_catalogue(config)])
    direct = load(runs)
    checked = load([dataclasses.replace(r, written=None) for r in runs])
    treated = sum((pd.read_csv(r.assignments)["group"] == "treated").sum() for r in runs)
    assert len(direct) == treated > 0
    assert sorted(direct.itertuples(index=False, name=None)) == sorted(
        checked.itertuples(index=False, name=None)
    )
    # a file edited since its run wrote it is checked again: one line, exit 2
    edited = runs[0].assignments
    edited.write_text(edited.read_text().replace(",treated,", ",maybe,", 1))
    result = runner.invoke(
        app, ["score", "-c", str(tmp_path / "nights.toml"), "--as-of", str(tonight), "-q"]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {edited}, line ")
    assert "column 'group'" in result.output


def test_a_report_prices_a_list_as_the_night_values_and_chooses(nightly, tmp_path):
    config = load_config(nightly)
    run = scoring.score(config, as_of=AS_OF, out=tmp_path / "out")
    model, metadata = load_model(find_model(None, config.model))
    trained = config_from_dict(metadata["config"])
    dataset = cg.load_dataset(config.data, definition="subscription")
    plan = cg.plan_features(dataset, horizon_days=trained.churn.horizon_days)
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    frame = cg.build_features(dataset, as_of=[AS_OF], plan=plan).to_pandas()
    frame = frame.set_index("customer_id").loc[scores["customer_id"]].reset_index()
    probability = model.churn_probability(frame)
    np.testing.assert_allclose(probability, scores["churn_probability"], atol=1e-6)
    pricing = training.list_pricing(dataset, frame, probability, plan, trained, model)
    np.testing.assert_allclose(pricing["customer_value"], scores["customer_value"], atol=0.006)
    listed = run.interventions.set_index("customer_id")
    chosen = pricing.set_index(frame["customer_id"]).loc[listed.index]
    # cents rounding, plus the probabilities' agreement to 1e-6 times the value it prices
    slack = 0.005 + 1e-6 * listed["customer_value"].to_numpy() + 1e-9
    gap = np.abs(chosen["expected_benefit"].to_numpy() - listed["expected_benefit"].to_numpy())
    assert (gap <= slack).all(), gap.max()
    np.testing.assert_allclose(chosen["cost"], listed["intervention_cost"])
    # nobody off the list is worth more than the last one on it, had the list been longer
    off = pricing["expected_benefit"][~frame["customer_id"].isin(listed.index)]
    held = set(
        pd.read_csv(tmp_path / "out" / "assignments.csv").query("group == 'holdout'")[
            "customer_id"
        ]
    )
    off = off[~frame["customer_id"].isin(held)]
    assert off.max() <= listed["expected_benefit"].min() + 0.006


def test_a_value_column_prices_customers_but_leaves_the_models_mrr_alone(nightly, tmp_path):
    config = tmp_path / "charged.toml"
    config.write_text(nightly.read_text() + '[value]\ncolumn = "company_size"\n')
    plain = scoring.score(load_config(nightly), as_of=AS_OF, out=tmp_path / "plain")
    priced = scoring.score(load_config(config), as_of=AS_OF, out=tmp_path / "priced")
    a, b = (pd.read_parquet(r.out / "scores.parquet") for r in (plain, priced))
    assert "mrr" in {
        s.name for s in load_model(find_model(None, load_config(nightly).model))[0].features
    }
    pd.testing.assert_series_equal(a["churn_probability"], b["churn_probability"])
    sizes = pd.read_parquet(nightly.parent / "data" / "customers.parquet").set_index(
        "customer_id"
    )["company_size"]
    size = sizes.loc[b["customer_id"]].to_numpy()
    charge = size * b["lifetime_months"].to_numpy()  # the charge, purchases on top
    assert (b["customer_value"].to_numpy() >= charge - 0.005 * size - 0.01).all()  # rounding
    assert not np.allclose(a["customer_value"], b["customer_value"])
    assert "company_size per month" in priced.manifest["value"]["formula"]


def test_the_terminal_shows_why_each_top_customer_gets_their_intervention(
    nightly, tmp_path, monkeypatch
):
    monkeypatch.setattr(cli, "out", Console(width=400))  # a row per line: each cell whole
    result = runner.invoke(
        app, ["score", "--config", str(nightly), "--as-of", AS_OF, "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "out" / "interventions.csv", keep_default_na=False)
    lines = result.output.splitlines()
    assert any("why" in line and "intervention" in line for line in lines)
    for row in listed.head(5).itertuples():
        line = next(line for line in lines if f" {row.customer_id} " in line)
        assert row.intervention in line and (row.answers or row.reason_1) in line, line


def test_each_row_says_what_its_intervention_answers(nightly, tmp_path):
    run = scoring.score(load_config(nightly), as_of=AS_OF, out=tmp_path / "out")
    listed = run.interventions
    catalogue = {i.name: i for i in default_interventions()}
    for row in listed.itertuples():
        if catalogue[row.intervention].problem:
            assert row.answers, row  # the problem it was chosen for, in words
        else:
            assert row.answers in {row.reason_1, row.reason_2, row.reason_3}, row
    reasons = listed[["reason_1", "reason_2", "reason_3"]].stack()
    assert not reasons.str.contains("customer for|country| 0 %|tenure").any()
    follow_ups = listed[listed["intervention"] == "billing follow-up"]
    assert follow_ups["answers"].str.contains("failed payment").all()
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert (scores["as_of"] == pd.Timestamp(AS_OF).date()).all()
    assert (scores["model_version"] == run.manifest["model"]["version"]).all()


def test_a_carry_column_the_customers_lack_is_refused_in_one_line(nightly, tmp_path):
    config = tmp_path / "carry.toml"
    config.write_text(nightly.read_text().replace("[score]\n", '[score]\ncarry = ["email"]\n'))
    result = _score(config, "--out", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2
    assert result.output.startswith("error: score.carry: 'email' is not a column of the customers")
    assert not (tmp_path / "out").exists()


def test_whole_history_summaries_are_no_reasons_and_a_missing_gap_says_why():
    specs = [
        FeatureSpec("purchase_count_total", "", "total", event_type="purchase"),
        FeatureSpec("bgnbd_p_alive", "", "probability"),
        FeatureSpec("activity_gap_sd_90d", "", "spread", window_days=90),
        FeatureSpec("activity_gap_mean_90d", "", "gap", window_days=90),
        FeatureSpec("activity_gap_mean_total", "", "gap"),
    ]
    values = pd.DataFrame(
        {
            "purchase_count_total": [12.0, 1.0],
            "bgnbd_p_alive": [0.1, 0.9],
            "activity_gap_sd_90d": [30.0, np.nan],
            "activity_gap_mean_90d": [np.nan, 3.0],
            "activity_gap_mean_total": [20.0, np.nan],
        }
    )
    # the summaries push risk up most, yet give no reason; one reason per topic (activity)
    contributions = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [5.0, 4.0, 3.0, -1.0, 1.0]])
    reasons = describe(specs, values, top_drivers(contributions, specs, values), DAY)
    assert reasons == [["at most one activity in the last 90 days"], ["no repeat activity yet"]]
