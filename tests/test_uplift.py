"""Uplift learned from randomised holdouts: estimates, the policy they give, and its check."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.cli import app
from churnguard.config import (
    InterventionConfig,
    default_interventions,
    load_config,
    load_effects,
)
from churnguard.errors import ConfigError
from churnguard.policy import (
    Effects,
    assumed_effects,
    band_cuts,
    band_of,
    best_pick,
    check,
    learn,
    qini,
    shown,
)
from conftest import browser_dom

runner = CliRunner()
NAMES = ["fix", "nudge", "call"]
COST = np.array([5.0, 5.0, 5.0])


def logged(seed: int, effects=(0.6, 0.2, 0.0), n: int = 6_000):
    """A randomised log: each decision an intervention at random, half held out; the planted
    effect removes a share of the churn risk, only of customers with the intervention's
    problem. Returns the decisions, who has their intervention's problem, and the true
    uplift."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(NAMES), n)
    problem = rng.random(n) < 0.3
    p = np.clip(rng.beta(2, 18, n), 0.005, 0.6)
    treated = rng.random(n) < 0.5
    uplift = np.where(problem, np.asarray(effects)[k], 0.0) * p
    churned = rng.random(n) < p - uplift * treated
    decisions = pd.DataFrame(
        {
            "intervention": np.array(NAMES)[k],
            "group": np.where(treated, "treated", "holdout"),
            "churned": churned.astype(int),
            "as_of": rng.integers(0, 4, n),
            "churn_probability": p,
            "customer_value": 500.0,
            "propensity": np.where(treated, 0.5 / len(NAMES), 0.5),
        }
    )
    return decisions, problem, uplift


def test_segment_intervals_cover_planted_effects_in_at_least_85_of_100_worlds():
    covered = []
    for seed in range(100):
        decisions, problem, truth = logged(seed)
        cuts = band_cuts(decisions["churn_probability"].to_numpy(), 3)
        effects = learn(decisions, problem, NAMES, cuts, COST)
        band = band_of(effects.cuts, decisions["churn_probability"].to_numpy())
        for seg in effects.segments.itertuples():
            rows = (
                (decisions["intervention"] == seg.intervention).to_numpy()
                & (problem == seg.problem)
                & (band == seg.band)
            )
            covered.append(seg.low <= truth[rows].mean() <= seg.high)
    assert np.mean(covered) >= 0.85


def test_help_is_shown_where_it_was_planted_and_not_where_it_was_not():
    decisions, problem, _ = logged(3, effects=(0.8, 0.0, 0.0), n=20_000)
    effects = learn(
        decisions, problem, NAMES, band_cuts(decisions["churn_probability"].to_numpy(), 3), COST
    )
    shown = effects.segments[effects.segments["shown"]]
    assert set(shown["intervention"]) == {"fix"}
    assert shown["problem"].all()  # customers without the problem are never pooled with it


#: A catalogue assuming each intervention keeps 30 % of its would-be churners with the problem.
CATALOGUE = tuple(
    InterventionConfig(name, 5.0, 0.3, problem=("ticket_count >= 1",)) for name in NAMES
)


def _verdict(seed: int, effects, n: int = 6_000, assumed=None) -> dict:
    """The check as ``churnguard uplift`` makes it: each of the four dates checked with effects
    learned from the other three (with the ``assumed`` prior, if any), the checked rows then
    compared together."""
    decisions, problem, _ = logged(seed, effects=effects, n=n)
    cuts = band_cuts(decisions["churn_probability"].to_numpy(), 3)
    # every customer has the problem of its own arm here; the others' are drawn alike
    flags = np.random.default_rng(seed).random((len(decisions), len(NAMES))) < 0.3
    k = np.array([NAMES.index(n) for n in decisions["intervention"]])
    flags[np.arange(len(decisions)), k] = problem
    parts = []
    for date in range(4):
        late = (decisions["as_of"] == date).to_numpy()
        learned_effects = learn(
            decisions[~late], problem[~late], NAMES, cuts, COST, assumed=assumed
        )
        rows = decisions[late].reset_index(drop=True)
        p, value = rows["churn_probability"].to_numpy(), rows["customer_value"].to_numpy()
        uplift, shown = learned_effects.lookup(NAMES, flags[late], p)
        learned, _ = best_pick(np.where(shown, uplift * value[:, None] - COST, -np.inf))
        # today's list trusts typed-in rates that favour the call, which does nothing
        current, _ = best_pick(p[:, None] * value[:, None] * np.array([0.1, 0.1, 0.3]) - COST)
        action = np.where(rows["group"] == "treated", k[late], -1)
        parts.append((rows, action, uplift, learned, current))
    rows = pd.concat([part[0] for part in parts], ignore_index=True)
    action, uplift, learned, current = (np.concatenate([p[i] for p in parts]) for i in range(1, 5))
    return check(rows, action, uplift, learned, current, COST)


@pytest.mark.parametrize("prior", ["none", "catalogue"])
def test_zero_effect_worlds_promote_in_at_most_5_of_100_seeds(prior):
    """Also with a catalogue that assumes every intervention helps: the prior does not make
    effects that are not there pass the check."""
    assumed = assumed_effects(CATALOGUE) if prior == "catalogue" else None
    promoted = sum(
        _verdict(seed, (0.0, 0.0, 0.0), assumed=assumed)["promote"] for seed in range(100)
    )
    assert promoted <= 5


@pytest.mark.parametrize("prior", ["none", "catalogue"])
def test_a_strong_planted_effect_is_promoted_most_of_the_time(prior):
    assumed = assumed_effects(CATALOGUE) if prior == "catalogue" else None
    verdicts = [_verdict(seed, (0.8, 0.0, 0.0), n=20_000, assumed=assumed) for seed in range(20)]
    assert sum(v["promote"] for v in verdicts) >= 12
    assert all(v["learned_vs_current"]["per_decision"] > 0 for v in verdicts[:5])


def test_a_catalogue_borne_out_lends_small_groups_its_strength():
    """Every intervention keeps 30 % of its would-be churners with the problem, as the
    catalogue assumes: with the catalogue as a prior more groups are shown than on their own
    evidence, with narrower intervals, and the spread around the catalogue is small."""
    assumed = assumed_effects(CATALOGUE)
    alone, combined = 0, 0
    for seed in range(10):
        decisions, problem, _ = logged(seed, effects=(0.3, 0.3, 0.3), n=4_000)
        plain = learn(decisions, problem, NAMES, (), COST)
        prior = learn(decisions, problem, NAMES, (), COST, assumed=assumed)
        alone += int(plain.groups["shown"].sum())
        combined += int(prior.groups["shown"].sum())
        finite = plain.groups["log_odds_se"].notna()
        assert (
            prior.groups.loc[finite, "log_odds_se"] < plain.groups.loc[finite, "log_odds_se"]
        ).all()
        measured = [g["measured"] for g in prior.prior["groups"]]
        assert np.allclose(measured, plain.groups["log_odds"], equal_nan=True)
    assert combined >= alone + 5


def test_evidence_against_the_catalogue_outweighs_it():
    """The catalogue assumes "fix" keeps 30 % of would-be churners; it doubles their risk
    instead, on 20,000 decisions: the prior's spread grows and "fix" is not shown."""
    decisions, problem, _ = logged(4, effects=(-1.0, 0.3, 0.3), n=20_000)
    effects = learn(decisions, problem, NAMES, (), COST, assumed=assumed_effects(CATALOGUE))
    fix = effects.groups[(effects.groups["intervention"] == "fix") & effects.groups["problem"]]
    assert not fix["shown"].item() and fix["log_odds"].item() > 0
    assert effects.prior["spread_sd"] > 0.3
    # a catalogue promising to keep every would-be churner still gives a finite prior
    sure = assumed_effects((InterventionConfig("fix", 5.0, 1.0, problem=("x >= 1",)),))
    assert sure == {("fix", True): pytest.approx(np.log(0.01)), ("fix", False): 0.0}


def test_help_is_shown_at_a_false_discovery_rate_not_one_test_at_a_time():
    # one-sided p-values 0.001, 0.01, 0.02, 0.035 and 0.5 of five tests: Benjamini-Hochberg at
    # 5 % passes the first k whose p(k) <= 0.05 k / 5 = 0.01, 0.02, 0.03, 0.04, 0.05
    z = np.array([3.090232, 2.326348, 2.053749, 1.811911, 0.0])
    assert list(shown(z, np.ones(5))) == [True, True, True, True, False]
    # alone, p = 0.035 passes a one-sided 5 % test; among 20 tests of nothing it does not
    z = np.concatenate([[1.811911], np.zeros(19)])
    assert not shown(z, np.ones(20)).any()
    assert not shown(np.array([np.nan, 5.0]), np.array([1.0, 0.0])).any()


def test_the_learned_policy_contacts_no_one_where_nothing_is_shown():
    uplift = np.array([[0.2, np.nan], [0.01, 0.02]])
    shown = np.array([[False, False], [True, True]])
    benefit = uplift * np.array([1000.0, 1000.0])[:, None] - np.array([5.0, 30.0])
    pick, benefit = best_pick(np.where(shown, benefit, -np.inf))
    # row 0: nothing shown; row 1: 0.01*1000-5 = 5 beats 0.02*1000-30 = -10
    assert list(pick) == [-1, 0] and list(benefit) == [0.0, 5.0]


def test_a_hand_computed_qini_curve():
    # ranked by score: T churn, H stay, T stay, H churn, T stay
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    churned = np.array([1, 0, 0, 1, 0])
    treated = np.array([True, False, True, False, True])
    curve = qini(score, churned, treated)
    # after k: holdout churners x treated / holdout - treated churners
    # 1: no holdout yet -> 0; 2: 0*1/1-1 = -1; 3: 0*2/1-1 = -1; 4: 1*2/2-1 = 0; 5: 1*3/2-1 = 0.5
    assert list(curve["targeted"]) == [0, 1, 2, 3, 4, 5]
    assert list(curve["saved"]) == [0.0, 0.0, -1.0, -1.0, 0.0, 0.5]


def test_effects_survive_a_round_trip_and_a_tampered_file_is_refused():
    decisions, problem, _ = logged(1)
    effects = learn(decisions, problem, NAMES, (0.05, 0.1), COST)
    with_prior = learn(
        decisions, problem, NAMES, (0.05, 0.1), COST, assumed=assumed_effects(CATALOGUE)
    )
    assert Effects.from_json(with_prior.to_json(), "effects.json").prior == with_prior.prior
    again = Effects.from_json(effects.to_json(), "effects.json")
    pd.testing.assert_frame_equal(again.segments, effects.segments, check_dtype=False)
    pd.testing.assert_frame_equal(again.groups, effects.groups, check_dtype=False)
    assert again.cuts == (0.05, 0.1) and again.interventions == tuple(NAMES)
    data = json.loads(effects.to_json())
    for damage, message in (
        (lambda d: d.update(format=1), "format"),
        (lambda d: d["segments"][0].update(uplift="1e999"), "not a name, flag or number"),
        (lambda d: d["segments"][0].update(uplift=float("inf")), "not a name, flag or number"),
        (lambda d: d.update(probability_cuts=[0.5, 0.1]), "must rise"),
        (
            lambda d: d["segments"][0].update(intervention="__import__('os')"),
            "unknown intervention",
        ),
        (lambda d: d["segments"][0].pop("shown"), "must have the keys"),
        (lambda d: d["groups"][0].update(log_odds="-1"), "not a name, flag or number"),
        (lambda d: d.pop("groups"), "groups must be a list"),
        (lambda d: d.update(prior=[1]), "prior must be a record"),
    ):
        broken = json.loads(json.dumps(data))
        damage(broken)
        with pytest.raises(ConfigError, match=message):
            Effects.from_json(json.dumps(broken, allow_nan=True), "effects.json")


# -- the uplift command on a simulated business with campaigns -------------------------------


@pytest.fixture(scope="module")
def campaign_log(tmp_path_factory):
    """A business with six randomised campaigns, a model trained on it and the treatment log
    that churnguard outcomes wrote: (config path, log path)."""
    root = tmp_path_factory.mktemp("campaigns")
    effects = root / "effects.toml"
    effects.write_text(
        (Path(cg.__file__).parent / "effects.toml")
        .read_text()
        .replace("reach = 0.5", "reach = 1.0")
    )
    cg.generate(
        root / "data",
        customers=4_000,
        days=540,
        seed=5,
        campaigns=6,
        effects=load_effects(effects),
    )
    config = root / "c.toml"
    config.write_text(
        f'[data]\npath = "{root / "data"}"\n[churn]\ndefinition = "subscription"\n'
        '[train]\nstart = "2024-04-01"\nend = "2025-03-01"\nevery_days = 28\n'
        f'[model]\nregistry = "{root / "models"}"\n'
    )
    cg.train(load_config(config))
    log = root / "log.parquet"
    done = runner.invoke(app, ["outcomes", "-c", str(config), "--out", str(log)])
    assert done.exit_code == 0, done.output
    return config, log


def _uplift(config, log, out):
    return runner.invoke(
        app, ["uplift", "-q", "-c", str(config), "--log", str(log), "--out", str(out)]
    )


def test_uplift_learns_checks_and_writes_its_files(campaign_log, tmp_path):
    config, log = campaign_log
    result = runner.invoke(
        app, ["uplift", "-c", str(config), "--log", str(log), "--out", str(tmp_path / "u")]
    )
    assert result.exit_code == 0, result.output
    assert "effects learned:" in result.output
    effects = Effects.from_json((tmp_path / "u" / "effects.json").read_text(), "effects.json")
    ev = effects.evaluation
    assert ev["decisions"] > 500 and len(ev["dates"]) >= 1
    assert effects.promote == (
        ev["learned_vs_current"]["bound"] > 0 and ev["learned_vs_none"]["bound"] > 0
    )
    for key in ("learned_vs_current", "learned_vs_none"):  # one-sided: inside the interval
        assert ev[key]["low"] < ev[key]["bound"] < ev[key]["per_decision"]
    assert set(effects.pooled["intervention"]) == {i.name for i in default_interventions()}
    table = pd.read_csv(tmp_path / "u" / "effects.csv")
    assert len(table) == len(effects.segments)
    assert (tmp_path / "u" / "qini.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "u" / "report.html").read_text()
    assert "Learned effects" in report and "data:image/png;base64," in report


def test_a_log_without_a_holdout_is_refused_in_one_line(campaign_log, tmp_path):
    config, log = campaign_log
    treated = pd.read_parquet(log)
    treated = treated[treated["group"] == "treated"]
    treated.to_parquet(tmp_path / "treated.parquet")
    result = _uplift(config, str(tmp_path / "treated.parquet"), tmp_path / "u")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {tmp_path / 'treated.parquet'}: no holdout rows: effects cannot be measured"
    )
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("intervention", "free lunch", "'free lunch' is not in the catalogue"),
        ("group", "control", "column 'group': expected a group"),
        ("churned", 7, "column 'churned': expected 0 or 1"),
    ],
)
def test_a_bad_log_is_refused_naming_row_and_column(
    campaign_log, tmp_path, column, value, message
):
    config, log = campaign_log
    frame = pd.read_parquet(log)
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    frame.to_parquet(tmp_path / "bad.parquet")
    result = _uplift(config, str(tmp_path / "bad.parquet"), tmp_path / "u")
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "u").exists()


@pytest.mark.skipif(
    not shutil.which("chromium") and not os.environ.get("CHURNGUARD_REQUIRE_BROWSER"),
    reason="needs Debian's chromium",
)
def test_the_uplift_report_renders_in_a_headless_browser(campaign_log, tmp_path):
    config, log = campaign_log
    runner.invoke(
        app, ["uplift", "-c", str(config), "--log", str(log), "--out", str(tmp_path / "u")]
    )
    dom, _ = browser_dom(tmp_path / "u" / "report.html", tmp_path / "profile")
    assert "<h1>Learned effects:" in dom
    assert dom.count("<table>") >= 2 and 'alt="Qini curves"' in dom
    encoded = dom.split("data:image/png;base64,", 1)[1].split('"', 1)[0]
    image = matplotlib.image.imread(io.BytesIO(base64.b64decode(encoded)), format="png")
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_the_backtest_reports_measured_savings_beside_the_assumed_one(campaign_log, tmp_path):
    config, log = campaign_log
    result = runner.invoke(
        app,
        [
            "evaluate",
            "-c",
            str(config),
            "--as-of",
            "2025-05-01",
            "--log",
            str(log),
            "--out",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["ranking"]["basis"] == "assumed success rate"
    measured = pd.DataFrame(metrics["measured"])
    expected = pd.read_parquet(log).groupby("intervention").size()
    assert (
        measured.set_index("intervention")[["treated", "holdout"]].sum(axis=1) == expected
    ).all()
    report = (tmp_path / "ev" / "report.html").read_text()
    assert (
        "<strong>assuming</strong>" in report and "Measured against randomised holdouts" in report
    )


def _learned_alone(p: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> Effects:
    """Effects learned from one intervention's decisions, every customer with its problem."""
    decisions = pd.DataFrame(
        {
            "intervention": "fix",
            "group": np.where(treated, "treated", "holdout"),
            "churned": churned.astype(int),
            "as_of": 0,
            "churn_probability": p,
            "customer_value": 100.0,
        }
    )
    return learn(decisions, np.ones(len(p), dtype=bool), ["fix"], (), np.array([1.0]))


def test_the_odds_model_recovers_a_known_effect_and_its_uplift_grows_with_risk():
    rng = np.random.default_rng(5)
    n = 40_000
    p = np.clip(rng.beta(2, 18, n), 0.005, 0.6)
    treated = rng.random(n) < 0.5
    odds = np.log(p / (1 - p)) + np.log(0.5) * treated  # treatment halves the odds
    churned = rng.random(n) < 1 / (1 + np.exp(-odds))
    effects = _learned_alone(p, treated, churned)
    (group,) = effects.groups.itertuples()
    assert abs(group.log_odds - np.log(0.5)) < 3 * group.log_odds_se
    assert abs(group.shift) < 0.1 and group.shown
    uplift, shown_ = effects.lookup(["fix"], np.ones((2, 1), dtype=bool), np.array([0.05, 0.3]))
    assert shown_.all() and 0 < uplift[0, 0] < uplift[1, 0]


def test_holdouts_of_drawn_arms_are_controls_for_every_arm_meant_for_their_problem():
    """A campaign that drew the intervention at random (treated chance 0.25 + holdout 0.5 < 1)
    shares its holdouts among the interventions for a problem they have; a nightly list
    (0.9 + 0.1 = 1) and an intervention meant for anyone keep their own."""
    from churnguard.config import InterventionConfig
    from churnguard.uplift import _shared_controls

    catalogue = (
        InterventionConfig("fix", 5.0, 0.3, problem=("ticket_count >= 1",)),
        InterventionConfig("call", 5.0, 0.3),
    )
    frame = pd.DataFrame(
        {
            "as_of": ["c", "c", "c", "n", "n"],
            "group": ["treated", "holdout", "holdout", "treated", "holdout"],
            "propensity": [0.25, 0.5, 0.5, 0.9, 0.1],
        }
    )
    problem = np.array([[True, True], [True, True], [False, True], [True, True], [True, True]])
    shared = _shared_controls(frame, problem, catalogue)
    assert shared.tolist() == [
        [False, False],  # treated
        [True, False],  # held out in the campaign with fix's problem: a control for fix
        [False, False],  # ... without it: not
        [False, False],
        [False, False],  # the nightly list chose the intervention
    ]


def test_shared_controls_narrow_the_interval_and_still_cover_the_planted_effect():
    decisions, problem, _ = logged(11, effects=(0.6, 0.0, 0.0), n=20_000)
    held = (decisions["group"] == "holdout").to_numpy()
    controls = (held & problem)[:, None] & np.array([True, True, True])[None, :]
    alone = learn(decisions, problem, NAMES, (), COST).groups
    shared = learn(decisions, problem, NAMES, (), COST, controls).groups
    fix = (alone["intervention"] == "fix") & alone["problem"]
    assert shared.loc[fix, "holdout"].item() > 2.5 * alone.loc[fix, "holdout"].item()
    assert shared.loc[fix, "log_odds_se"].item() < 0.95 * alone.loc[fix, "log_odds_se"].item()
    # the planted effect removes 60 % of the risk: log-odds about log(0.4) at low risk
    row = shared[fix].iloc[0]
    assert abs(row.log_odds - np.log(0.4)) < 3 * row.log_odds_se
    # groups without the problem keep their own holdout
    calm = ~alone["problem"]
    assert (shared.loc[calm, "holdout"] == alone.loc[calm, "holdout"]).all()


def test_an_effect_that_fades_with_risk_is_learned_and_spares_the_lost_causes():
    """Treatment halves the odds at typical risk but helps less the riskier the customer, and
    harms the riskiest: the slope is recovered, and the learned uplift turns negative there."""
    rng = np.random.default_rng(8)
    n = 60_000
    p = np.clip(rng.beta(2, 12, n), 0.005, 0.8)
    o = np.log(p / (1 - p))
    treated = rng.random(n) < 0.5
    centre = o[treated].mean()
    effect = np.log(0.5) + 1.0 * (o - centre)
    churned = rng.random(n) < 1 / (1 + np.exp(-(o + effect * treated)))
    effects = _learned_alone(p, treated, churned)
    (group,) = effects.groups.itertuples()
    assert 0.7 < group.risk_slope < 1.3 and abs(group.centre - centre) < 1e-9
    assert abs(group.log_odds - np.log(0.5)) < 3 * group.log_odds_se
    typical, lost = 1 / (1 + np.exp(-centre)), 1 / (1 + np.exp(-(centre + 2.0)))
    uplift, _ = effects.lookup(["fix"], np.ones((2, 1), dtype=bool), np.array([typical, lost]))
    assert uplift[1, 0] < 0 < uplift[0, 0]


def test_the_check_cuts_the_decisions_into_runs_of_dates_and_checks_every_one():
    from churnguard.uplift import _check_blocks

    dates = pd.to_datetime(["2025-01-01"] * 4 + ["2025-02-01"] * 4 + ["2025-03-01"] * 8)
    frame = pd.DataFrame({"as_of": dates, "customer_id": [f"C{i}" for i in range(16)]})
    blocks = _check_blocks(frame, 0.25)
    # a quarter, a quarter, then half: each date whole, later dates in later runs
    assert blocks.tolist() == [0] * 4 + [1] * 4 + [2] * 8
    # a single date: its customers split at random, four runs
    many = pd.DataFrame(
        {"as_of": pd.Timestamp("2025-01-01"), "customer_id": [f"C{i}" for i in range(800)]}
    )
    split = _check_blocks(many, 0.25)
    assert set(split) == {0, 1, 2, 3} and np.bincount(split).min() > 120
    np.testing.assert_array_equal(split, _check_blocks(many, 0.25))  # the same on a re-run
