"""Outcomes written back: decisions labelled at their own date, effects measured by holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard import cli
from churnguard.assignment import ASSIGNMENT_COLUMNS
from churnguard.cli import app
from churnguard.measure import customers_needed, saving
from churnguard.spreadsheet import write_csv
from churnguard.treatment_log import LOG_COLUMNS
from conftest import file_tree, write_dataset

runner = CliRunner()
FOLLOW_UP = "billing follow-up"


def campaign() -> dict[str, pd.DataFrame]:
    """Nine subscribers and one list on 2025-03-01 (30-day horizon), worked out by hand:

    * treated X1-X4: X1 leaves on 03-10 (churn), the others stay: churn 1/4;
    * holdout X5-X8: X5 and X6 leave on 03-20 (churn), X7 on 04-15 (after the horizon), X8
      stays: churn 2/4, so the follow-up saved 25 points;
    * X9 had already left on 02-01 (not in the population: unlabelled);
    * X2 again on 04-20: its horizon ends after the data (X10 starts 05-01): pending.
    """
    ids = [f"X{i}" for i in range(1, 11)]
    customers = pd.DataFrame({"customer_id": ids, "signup_date": "2024-01-01"})
    ends = [
        "2025-03-10",
        None,
        None,
        None,
        "2025-03-20",
        "2025-03-20",
        "2025-04-15",
        None,
        "2025-02-01",
        None,
    ]
    subscriptions = pd.DataFrame(
        {
            "customer_id": ids,
            "start_date": ["2024-01-01"] * 9 + ["2025-05-01"],
            "end_date": ends,
            "mrr": 20.0,
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ids,
            "timestamp": "2024-06-01 10:00:00",
            "event_type": "login",
        }
    )
    treatments = pd.DataFrame(
        {
            "customer_id": [*ids[:9], "X2"],
            "as_of": ["2025-03-01"] * 9 + ["2025-04-20"],
            "intervention": FOLLOW_UP,
            "group": ["treated"] * 4 + ["holdout"] * 4 + ["treated", "Treated"],
        }
    )
    return {
        "customers": customers,
        "subscriptions": subscriptions,
        "events": events,
        "treatments": treatments,
    }


def _config(tmp_path, tables) -> str:
    data = write_dataset(tmp_path / "data", **tables)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\npath = "{data}"\n[churn]\ndefinition = "subscription"\nhorizon_days = 30\n'
        f'[model]\nregistry = "{tmp_path / "models"}"\n'
    )
    return str(config)


def test_decisions_are_labelled_at_their_own_date_and_the_saving_measured(tmp_path):
    config = cg.load_config(_config(tmp_path, campaign()))
    result = cg.outcomes(config, out=tmp_path / "log.parquet")
    log = result.log.set_index("customer_id")
    assert list(result.log.columns) == list(LOG_COLUMNS)
    assert log["churned"].to_dict() == {
        "X1": 1,
        "X2": 0,
        "X3": 0,
        "X4": 0,
        "X5": 1,
        "X6": 1,
        "X7": 0,
        "X8": 0,
    }
    assert (result.pending, result.unlabelled) == (1, 1)
    row = result.effects.set_index("intervention").loc[FOLLOW_UP]
    assert (row["treated"], row["holdout"]) == (4, 4)
    assert (row["churn_treated"], row["churn_holdout"]) == (0.25, 0.5)
    assert row["saving"] == pytest.approx(0.25)
    assert row["saving_low"] < 0 < row["saving_high"]  # four customers a group prove nothing
    written = pd.read_parquet(tmp_path / "log.parquet")
    pd.testing.assert_frame_equal(written, result.log, check_dtype=False)


def test_until_keeps_back_decisions_whose_horizon_has_not_ended(tmp_path):
    config = _config(tmp_path, campaign())
    outcome = runner.invoke(
        app,
        ["outcomes", "-c", config, "--until", "2025-03-25", "--out", str(tmp_path / "l.parquet")],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "0 decisions labelled up to 2025-03-25" in outcome.output
    assert "10 (horizon not ended)" in outcome.output


def test_the_cli_prints_the_saving_per_intervention(tmp_path, monkeypatch):
    monkeypatch.setattr(cli.out, "width", 200)
    config = _config(tmp_path, campaign())
    outcome = runner.invoke(
        app, ["outcomes", "-c", config, "--out", str(tmp_path / "log.parquet")]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "8 decisions labelled" in outcome.output
    line = next(x for x in outcome.output.splitlines() if FOLLOW_UP in x)
    assert "25.0%" in line and "50.0%" in line and "+25.0%" in line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.loc.__setitem__((0, "group"), "control"), "column 'group'"),
        (lambda t: t.loc.__setitem__((0, "intervention"), "free lunch"), "an intervention of"),
        (lambda t: t.loc.__setitem__((1, "customer_id"), "X1"), "one decision per customer"),
        (lambda t: t.loc.__setitem__((0, "as_of"), "2025-13-01"), "column 'as_of'"),
        (lambda t: t.loc.__setitem__((0, "as_of"), "2025-03-01 09:00"), "without a time of day"),
        (lambda t: t.__setitem__("cost", [-1.0] + [5.0] * 9), "a cost of 0 or more"),
        (lambda t: t.__setitem__("propensity", [0.0] + [0.5] * 9), "a propensity above 0"),
        (lambda t: t.loc.__setitem__((0, "customer_id"), "nobody"), "a customer_id listed"),
    ],
)
def test_a_bad_contact_log_exits_2_in_one_line_and_writes_nothing(tmp_path, change, message):
    tables = campaign()
    change(tables["treatments"])
    config = _config(tmp_path, tables)
    before = file_tree(tmp_path)
    outcome = runner.invoke(
        app, ["outcomes", "-q", "-c", config, "--out", str(tmp_path / "log.parquet")]
    )
    assert outcome.exit_code == 2
    assert message in outcome.output and "treatments.csv" in outcome.output
    assert len(outcome.output.strip().splitlines()) == 1
    assert file_tree(tmp_path) == before


def test_without_decisions_it_says_where_to_find_them(tmp_path):
    tables = campaign()
    del tables["treatments"]
    config = _config(tmp_path, tables)
    outcome = runner.invoke(app, ["outcomes", "-c", config, "--out", str(tmp_path / "l.parquet")])
    assert outcome.exit_code == 2
    assert "no treatments table" in outcome.output and "--scores" in outcome.output
    assert not (tmp_path / "l.parquet").exists()


def test_the_saving_interval_covers_the_true_saving_about_95_times_in_100():
    """Agresti–Caffo within strata: coverage near 95 % at 150 customers a group and 5 % churn,
    where a plain normal interval falls short."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        treated = rng.random(300) < 0.5
        strata = rng.integers(0, 2, 300)
        base = np.where(strata == 0, 0.05, 0.10)
        churned = rng.random(300) < base - 0.03 * treated
        measured = saving(churned, treated, strata)
        covered += measured.low <= 0.03 <= measured.high
    assert covered / 400 >= 0.92


def test_a_stratified_saving_is_not_fooled_by_lists_of_different_risk():
    """Simpson's paradox: the treated share is high on a risky night; pooling every row would
    show treatment raising churn, the per-night comparison shows the true saving."""
    risky = {"n_t": 900, "n_h": 100, "rate_t": 0.30, "rate_h": 0.40}
    calm = {"n_t": 100, "n_h": 900, "rate_t": 0.02, "rate_h": 0.04}
    churned, treated, night = [], [], []
    for k, s in enumerate((risky, calm)):
        for flag, n, rate in ((True, s["n_t"], s["rate_t"]), (False, s["n_h"], s["rate_h"])):
            ones = round(n * rate)
            churned += [1] * ones + [0] * (n - ones)
            treated += [flag] * n
            night += [k] * n
    pooled = saving(np.array(churned), np.array(treated))
    stratified = saving(np.array(churned), np.array(treated), np.array(night))
    assert pooled.saving < 0 < stratified.saving
    assert stratified.saving == pytest.approx(0.5 * 0.10 + 0.5 * 0.02)


def test_the_power_calculation_matches_the_textbook_figure():
    # 10 % churn down to 8 %: about 3,200 customers a group at 80 % power, 5 % two-sided
    assert 3_150 <= customers_needed(0.10, 0.02) <= 3_250
    assert customers_needed(0.10, 0.04) < customers_needed(0.10, 0.02)


def test_without_a_holdout_nothing_is_measured():
    measured = saving(np.array([0, 1, 0]), np.array([True, True, True]), np.array([1, 1, 2]))
    assert not measured.measured and np.isnan(measured.saving)
    assert (measured.treated, measured.holdout) == (3, 0)


def test_ids_a_spreadsheet_would_run_come_back_from_assignments_csv_as_they_were(tmp_path):
    """assignments.csv puts a quote before "=X1" so a spreadsheet shows it as text; the
    outcomes take it off again, so the decision finds its customer."""
    tables = campaign()
    for name in ("customers", "subscriptions", "events"):
        tables[name]["customer_id"] = tables[name]["customer_id"].replace("X1", "=X1")
    decisions = tables.pop("treatments").head(8)
    decisions["customer_id"] = decisions["customer_id"].replace("X1", "=X1")
    config = _config(tmp_path, tables)
    night = tmp_path / "scores" / "2025-03-01"
    night.mkdir(parents=True)
    frame = decisions.assign(
        group=decisions["group"].str.lower(),
        cost=5.0,
        churn_probability=0.2,
        customer_value=100.0,
        expected_benefit=5.0,
        run_id="r1",
    )[list(ASSIGNMENT_COLUMNS)]
    write_csv(frame, night / "assignments.csv")
    assert "'=X1" in (night / "assignments.csv").read_text()
    result = runner.invoke(
        app,
        [
            "outcomes",
            "-c",
            config,
            "--scores",
            str(tmp_path / "scores"),
            "--out",
            str(tmp_path / "log.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    log = pd.read_parquet(tmp_path / "log.parquet").set_index("customer_id")
    assert log.loc["=X1", "churned"] == 1 and len(log) == 8
