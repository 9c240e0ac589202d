"""The BG/NBD model, the purchase-log world with known truth, and the features built on both."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import churnguard as cg
from churnguard.bgnbd import BGNBD, _bgnbd_ll, fit_bgnbd
from churnguard.cli import app
from churnguard.config import ChurnConfig
from churnguard.errors import ConfigError
from churnguard.features import fit_bgnbd_at
from churnguard.labels import population
from churnguard.retail import CHANNEL_PARAMETERS, generate_purchases
from conftest import write_dataset

TRUE = BGNBD(r=0.5, alpha=20.0, a=0.8, b=4.0)
HORIZON = 90
#: A date on the retail world's truth grid (every 7 days from 2024-01-01).
T = dt.datetime(2025, 5, 19)  # day 504: its horizon ends before the 600 days simulated


def _simulate(model: BGNBD, n: int, T: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """BG/NBD summaries (x, t_x) of ``n`` customers watched for ``T`` days from their first
    purchase, and each one's purchases in the ``HORIZON`` days after."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(model.r, 1 / model.alpha, n)
    dropout = rng.beta(model.a, model.b, n)
    x, t_x, later = np.zeros(n), np.zeros(n), np.zeros(n)
    t, alive = np.zeros(n), np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1 / rate[idx])
        ended = t[idx] >= T[idx] + HORIZON
        alive[idx[ended]] = False
        bought = idx[~ended]
        seen = bought[t[bought] < T[bought]]
        x[seen] += 1
        t_x[seen] = t[seen]
        later[bought[t[bought] >= T[bought]]] += 1
        alive[bought[rng.random(bought.size) < dropout[bought]]] = False
    return x, t_x, later


def test_the_fit_recovers_the_parameters_the_data_was_drawn_with():
    # At 20,000 customers each estimate's standard error is under 5 % of the parameter (b's,
    # the widest, about 4 %): 15 % is three of them.
    T_ = np.random.default_rng(1).uniform(30, 700, 20_000)
    x, t_x, _ = _simulate(TRUE, 20_000, T_, seed=2)
    fitted = fit_bgnbd(x, t_x, T_)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.15), name
    # grouping identical summaries with their counts as weights fits the same model
    frame = pd.DataFrame({"x": x, "t_x": np.floor(t_x), "T": np.floor(T_)})
    grouped = frame.value_counts().reset_index()
    weighted = fit_bgnbd(grouped["x"], grouped["t_x"], grouped["T"], grouped["count"])
    plain = fit_bgnbd(frame["x"], frame["t_x"], frame["T"])
    assert weighted.r == pytest.approx(plain.r, rel=1e-3)
    assert weighted.b == pytest.approx(plain.b, rel=1e-3)


@pytest.mark.parametrize("theta", [(0.5, 20.0, 0.8, 4.0), (3.0, 0.5, 2.5, 0.3)])
def test_the_likelihood_gradient_the_fit_follows_is_the_likelihood_s_slope(theta):
    # central differences in the log-parameters, on rows with and without repeat days
    x = np.array([0.0, 0.0, 1.0, 3.0, 12.0])
    t_x = np.array([0.0, 0.0, 5.0, 40.0, 300.0])
    T_ = np.array([1.0, 200.0, 30.0, 41.0, 365.0])
    log_theta = np.log(theta)
    _, grad = _bgnbd_ll(np.exp(log_theta), x, t_x, T_)
    step = 1e-6
    for i in range(4):
        up, down = log_theta.copy(), log_theta.copy()
        up[i] += step
        down[i] -= step
        slope = _bgnbd_ll(np.exp(up), x, t_x, T_)[0] - _bgnbd_ll(np.exp(down), x, t_x, T_)[0]
        np.testing.assert_allclose(grad[i], slope / (2 * step), rtol=1e-5, atol=1e-7)


def test_the_chance_of_no_purchase_in_the_horizon_matches_what_happens():
    n = 40_000
    T_ = np.full(n, 200.0)
    x, t_x, later = _simulate(TRUE, n, T_, seed=3)
    silent = later == 0
    # a customer with no repeat purchase is alive for sure: P(none) = the rate posterior's
    p_first = TRUE.p_none(np.zeros(1), np.zeros(1), np.array([200.0]), HORIZON)[0]
    assert TRUE.p_alive(np.zeros(1), np.zeros(1), np.array([200.0]))[0] == 1.0
    share, size = silent[x == 0].mean(), (x == 0).sum()
    assert abs(share - p_first) < 3 * np.sqrt(p_first * (1 - p_first) / size)
    # over everyone, predicted and realised silence agree (calibration in the large), and
    # per decile of the prediction
    p = TRUE.p_none(x, t_x, T_, HORIZON)
    assert abs(silent.mean() - p.mean()) < 3 * np.sqrt(p.mean() * (1 - p.mean()) / n)
    deciles = pd.qcut(p, 10, labels=False, duplicates="drop")
    by = pd.DataFrame({"p": p, "silent": silent, "d": deciles}).groupby("d").mean()
    assert (by["p"] - by["silent"]).abs().max() < 0.03
    # expected purchases agree with the realised mean
    expected = TRUE.expected(x, t_x, T_, HORIZON)
    assert expected.mean() == pytest.approx(later.mean(), rel=0.05)


@pytest.fixture(scope="module")
def retail(tmp_path_factory) -> cg.Dataset:
    folder = tmp_path_factory.mktemp("retail")
    generate_purchases(folder, customers=3_000, days=600, seed=4, horizon_days=HORIZON)
    return cg.load_dataset(folder)


def test_the_truth_is_calibrated_against_the_purchases_that_follow(retail):
    folder = retail.tables["customers"].path.parent
    truth = pd.read_parquet(folder / "truth.parquet")
    events = pd.read_parquet(folder / "events.parquet")
    at = truth[truth["date"] == T.date()]
    later = events[(events.timestamp >= T) & (events.timestamp < T + dt.timedelta(HORIZON))]
    silent = ~at["customer_id"].isin(later["customer_id"])
    p = at["p_no_purchase"].to_numpy(float)
    assert 0 <= p.min() and p.max() <= 1
    assert abs(silent.mean() - p.mean()) < 3 * np.sqrt((p * (1 - p)).sum()) / len(p)
    # everyone born before the date has a truth there, and nobody born after it
    born = pd.read_parquet(folder / "customers.parquet")
    assert set(at["customer_id"]) == set(born.loc[born.signup_date < T.date(), "customer_id"])


def test_the_same_seed_gives_the_same_world_and_the_cli_writes_it(tmp_path, retail):
    result = CliRunner().invoke(
        app,
        ["generate", "--kind", "purchases", "--out", str(tmp_path / "a"), "--customers", "3000"]
        + ["--days", "600", "--seed", "4", "--horizon-days", str(HORIZON)],
    )
    assert result.exit_code == 0, result.output
    assert "dropped out" in result.output
    folder = retail.tables["customers"].path.parent
    for name in ("customers", "events", "truth"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "a" / f"{name}.parquet"),
            pd.read_parquet(folder / f"{name}.parquet"),
        )
    refused = CliRunner().invoke(
        app, ["generate", "--kind", "purchases", "--campaigns", "3", "--out", str(tmp_path / "b")]
    )
    assert refused.exit_code == 2 and "--kind saas" in refused.output
    assert not (tmp_path / "b").exists()


def test_bgnbd_features_are_the_fitted_model_at_each_date(retail):
    plan = cg.plan_features(retail, horizon_days=HORIZON)
    fits = fit_bgnbd_at(retail, [T], plan)
    frame = cg.build_features(retail, as_of=[T], plan=plan).to_pandas()
    x = frame["active_days_total"].to_numpy() - 1
    t_x = x * frame["activity_gap_mean_total"].fillna(0).to_numpy()
    # T from the first active day: the days since the first activity, to the day
    days_first = np.ceil(frame["days_since_first_activity"].to_numpy())
    model = fits[T]
    assert model is not None and model.a > 0
    np.testing.assert_allclose(
        frame["bgnbd_p_alive"], model.p_alive(x, t_x, days_first), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        frame[f"bgnbd_p_active_{HORIZON}d"],
        1 - model.p_none(x, t_x, days_first, HORIZON),
        rtol=1e-9,
        atol=1e-12,
    )
    # the fit is close to the parameters of the channels the world mixes
    assert min(m.alpha for m in CHANNEL_PARAMETERS.values()) < model.alpha
    assert model.alpha < 2 * max(m.alpha for m in CHANNEL_PARAMETERS.values())


def test_whole_history_features_never_see_the_as_of_date_or_after(retail, tmp_path):
    plan = cg.plan_features(retail, horizon_days=HORIZON)
    names = [
        "active_days_total",
        "days_since_first_activity",
        "activity_gap_mean_total",
        "activity_gap_sd_90d",
        "purchase_count_total",
        "purchase_value_sum_total",
        "bgnbd_p_alive",
        f"bgnbd_p_active_{HORIZON}d",
    ]
    before = cg.build_features(retail, as_of=[T], plan=plan).to_pandas()
    folder = retail.tables["customers"].path.parent
    events = pd.read_parquet(folder / "events.parquet")
    # rewrite everything from T on: other customers, other times, other values
    later = events[events.timestamp >= T].copy()
    later["timestamp"] = later["timestamp"] + pd.Timedelta(days=3, hours=5)
    later["value"] = later["value"] * 7
    later["customer_id"] = later["customer_id"].sample(frac=1, random_state=0).to_numpy()
    changed = pd.concat([events[events.timestamp < T], later])
    customers = pd.read_parquet(folder / "customers.parquet")
    other = cg.load_dataset(
        write_dataset(tmp_path, "parquet", customers=customers, events=changed)
    )
    after = cg.build_features(other, as_of=[T], plan=plan).to_pandas()
    pd.testing.assert_frame_equal(before[names], after[names])
    # and several dates in one pass equal one date at a time, fits included
    dates = [dt.datetime(2025, 3, 24), T]
    both = cg.build_features(retail, as_of=dates, plan=plan).to_pandas()
    for when in dates:
        one = cg.build_features(retail, as_of=[when], plan=plan).to_pandas()
        pd.testing.assert_frame_equal(
            both[both.as_of == when][names].reset_index(drop=True), one[names]
        )


def test_population_all_scores_and_labels_lapsed_customers_too(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop))
    when = dt.datetime(2025, 3, 1)

    def labels(**churn) -> dict[str, int]:
        frame = cg.build_labels(dataset, as_of=[when], churn=ChurnConfig(**churn)).to_pandas()
        return dict(zip(frame.customer_id, frame.churned, strict=True))

    # B's last activity (2024-12-01) is 90 days before: lapsed under a 30-day horizon, but
    # in the population under "all"; it buys again on 03-20, within the horizon, so it is won
    # back, unless only logins count
    assert labels(horizon_days=30) == {"A": 0}
    assert labels(horizon_days=30, population="all") == {"A": 0, "B": 0}
    assert labels(horizon_days=30, population="all", activity_events=("login",)) == {
        "A": 0,
        "B": 1,
    }
    who = population(dataset, as_of=when, churn=ChurnConfig(horizon_days=30, population="all"))
    assert sorted(who.to_pandas()["customer_id"]) == ["A", "B"]
    with pytest.raises(ConfigError, match="population"):
        ChurnConfig(definition="subscription", population="all")


def test_training_on_a_purchase_log_reports_bgnbd_beside_the_logistic_baseline(retail, tmp_path):
    folder = retail.tables["customers"].path.parent
    cfg = cg.load_config(
        None,
        {
            "data.path": folder,
            "churn.definition": "inactivity",
            "churn.horizon_days": HORIZON,
            "features.survey_events": [],
            "train.start": "2024-06-03",
            "train.end": T.date().isoformat(),
            "train.every_days": 28,
            "model.registry": tmp_path / "models",
        },
    )
    run = cg.train(cfg)
    ev = run.evaluation
    assert {"model", "baseline", "bgnbd", "true_hazard"} <= set(ev.metrics)
    assert ev.against["bgnbd"] in ("better", "level", "worse")
    assert ev.metrics["true_hazard"]["rows"] == run.validation_rows  # T is on the truth grid
    low, high = ev.intervals["bgnbd"]["roc_auc_score"]
    assert low <= ev.metrics["bgnbd"]["roc_auc_score"] <= high
    assert "bgnbd" in run.report.read_text()


def test_beyond_its_cap_the_fit_reads_a_fixed_md5_sample_of_customers(retail, monkeypatch):
    import hashlib

    import churnguard.features as features

    plan = cg.plan_features(retail, horizon_days=HORIZON)
    full = fit_bgnbd_at(retail, [T], plan)[T]
    monkeypatch.setattr(features, "FIT_CUSTOMERS", 1_000)
    sample = fit_bgnbd_at(retail, [T], plan)[T]
    # the same sample, drawn by hand: the MD5 of "0:" + id below a third of the range
    frame = cg.build_features(retail, as_of=[T], plan=plan, fits={T: full}).to_pandas()
    threshold = f"{int(1_000 / 3_000 * 16**8):08x}"
    frame = frame[frame["active_days_total"] > 0]
    chosen = frame[
        [hashlib.md5(f"0:{c}".encode()).hexdigest()[:8] < threshold for c in frame.customer_id]
    ]
    x = chosen["active_days_total"].to_numpy() - 1
    t_x = x * chosen["activity_gap_mean_total"].fillna(0).to_numpy()
    days = np.ceil(chosen["days_since_first_activity"].to_numpy())
    grouped = pd.DataFrame({"x": x, "t_x": t_x, "T": days}).value_counts().sort_index()
    summaries = grouped.reset_index()  # as the engine sends them: distinct, with counts
    by_hand = fit_bgnbd(summaries["x"], summaries["t_x"], summaries["T"], summaries["count"])
    assert 800 < len(chosen) < 1_200
    for name in ("r", "alpha", "a", "b"):
        assert getattr(sample, name) == pytest.approx(getattr(by_hand, name), rel=1e-6), name
        assert getattr(sample, name) == pytest.approx(getattr(full, name), rel=0.5), name
