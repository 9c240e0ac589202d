"""Out-of-time model quality on generated data, beside the truth and every baseline.

Two worlds, each generated once and cached under ``data/bench/``:

* ``saas`` (default): 20,000 customers over 730 days with seed 1 (``churnguard generate
  --customers 20000 --days 730 --seed 1``), trained with the demo config exactly as ``churnguard
  train`` does; the truth is the simulation's hazard.
* ``telecom``: an entity table shaped like a telecom export (9,391 customers, 7,043 of them
  labelled; a dozen attributes, a churn flag, no dates) whose churn is a logistic function of
  four of its columns (:func:`churnguard.synth.generate_entity_table`), trained in ``labels``
  mode with the stratified hold-out; the truth is each customer's churn probability.
* ``purchases``: a retailer's purchase log, 20,000 customers over 730 days with seed 1
  (``churnguard generate --kind purchases --customers 20000 --seed 1``), ``inactivity`` churn
  over 90 days, snapshots every 28 days to 2025-09-22; the truth is each customer's best
  possible probability of no purchase. Beside the logistic baseline it reports BG/NBD twice:
  its chance of no purchase in the horizon and its expected purchases (the usual ranking).

Each reports on the held-out latest snapshot: ROC-AUC of the model, the baselines and the
truth (the best any model could do), with 95 % bootstrap intervals and verdicts, calibration,
and the profit-maximising list size.

    python benchmarks/model_quality.py [--world saas|purchases|telecom] [--tune]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import r2_score, roc_auc_score

import churnguard as cg
from churnguard.dataset import training_frames
from churnguard.evaluation import bootstrap_intervals
from churnguard.features import fit_bgnbd_at
from churnguard.model import DEFAULT_PARAMS
from churnguard.retail import generate_purchases
from churnguard.synth import generate_entity_table, true_hazard
from churnguard.training import TrainingRun, train

ROOT = Path(__file__).resolve().parent.parent


PURCHASES = {
    "churn.definition": "inactivity",
    "churn.horizon_days": 90,
    "features.survey_events": [],
    "train.start": "2024-07-01",
    "train.end": "2025-09-22",
    "train.every_days": 28,
}


def main() -> None:
    world = sys.argv[sys.argv.index("--world") + 1] if "--world" in sys.argv else "saas"
    if world == "telecom":
        folder = ROOT / "data" / "bench" / "telecom-c9391-s1"
        if not (folder / "labels.csv").exists():
            generate_entity_table(folder, customers=9_391, seed=1)
        overrides = {"churn.definition": "labels"}
    elif world == "purchases":
        folder = ROOT / "data" / "bench" / "purchases-c20000-d730-s1"
        if not (folder / "events.parquet").exists():
            generate_purchases(folder, customers=20_000, days=730, seed=1, horizon_days=90)
        overrides = PURCHASES
    else:
        folder = ROOT / "data" / "bench" / "c20000-d730-s1"
        if "engagement" not in _columns(folder / "truth.parquet"):  # absent or from before it
            cg.generate(folder, customers=20_000, days=730, seed=1, force=True)
        overrides = {}
    with tempfile.TemporaryDirectory() as registry:
        cfg = cg.load_config(
            ROOT / "pipelines" / "demo.toml",
            {**overrides, "data.path": folder, "model.registry": registry},
        )
        began = time.perf_counter()
        run = train(cfg, tune_params="--tune" in sys.argv)
        seconds = time.perf_counter() - began
    ev = run.evaluation
    model, baseline = ev.metrics["model"], ev.metrics["baseline"]
    true_auc = ev.metrics["true_hazard"]["roc_auc_score"]
    where = (
        f"over {len(run.split.train)} snapshots; validation {run.validation_rows:,} at "
        f"{run.split.validation[0].date()}"
        if run.split
        else f"validation {run.validation_rows:,} (stratified random hold-out)"
    )
    print(
        f"training rows {run.train_rows:,} ({run.train_churn_rate:.1%} churn) {where}; "
        f"{seconds:.1f}s (features, fit, report); blend: "
        f"{run.result.model.calibrator.baseline_weight:.0%} of the baseline"
    )
    if run.tuning:
        t = run.tuning
        print(
            f"tuning   {t.trials} trials in {t.seconds:.0f}s, inner log loss "
            f"{t.default_log_loss:.5f} -> {t.best_log_loss:.5f}"
        )
    print(
        f"ROC-AUC  model {model['roc_auc_score']:.4f}  baseline {baseline['roc_auc_score']:.4f}"
        f"  true hazard {true_auc:.4f}  gap {ev.auc_gap:+.4f}"
    )
    print(
        f"ECE      model {model['expected_calibration_error']:.4f}  baseline "
        f"{baseline['expected_calibration_error']:.4f}; calibration chosen: "
        f"{run.result.model.calibrator.method} (out-of-fold log loss "
        f"{run.result.calibration_log_loss})"
    )
    auc = ev.intervals["model"]["roc_auc_score"]
    print(f"95 %     model ROC-AUC {auc[0]:.4f} to {auc[1]:.4f}")
    for other in ("baseline", "bgnbd"):
        if other in ev.against:
            print(f"against  {other}: {ev.lead(other)}")
    if world == "purchases":
        print(f"BG/NBD   expected purchases ROC-AUC {_expected_auc(cfg, run):.4f}")
    size, profit = ev.best_list_size
    print(
        f"PR-AUC {model['pr_auc_score']:.4f}  Brier {model['brier_loss']:.4f}  "
        f"lift@10% {model['lift_top_10pct']:.2f}  capture@20% {model['capture_top_20pct']:.2f}  "
        f"best list {size:,} ({size / run.validation_rows:.1%}), profit {profit:,.0f}"
    )
    if world == "saas":
        _unseen(cfg)


def _columns(path: Path) -> list[str]:
    return pq.read_schema(path).names if path.exists() else []


def _unseen(cfg: cg.PipelineConfig) -> None:
    """What the gap to the truth is made of: the hazard rises as the latent engagement falls,
    and the events show engagement only through noisy counts. A plain LightGBM (the model's
    parameters, stopped on the last training snapshot) is fitted on the features, then on the
    features plus each row's true engagement (from ``truth``, on its last weekly date on or
    before the as-of date, which no real export has); and a regression tells how much of the
    engagement the features recover on the validation rows."""
    dataset = cg.load_dataset(cfg.data)
    plan = cg.plan_features(dataset, config=cfg.features, horizon_days=cfg.churn.horizon_days)
    train_rows, valid, _ = training_frames(
        dataset, train=cfg.train, churn=cfg.churn, features=cfg.features, plan=plan
    )
    train_rows, valid = (
        f.assign(engagement=true_hazard(cfg.data.path, f, column="engagement"))
        for f in (train_rows, valid)
    )
    features = [spec.name for spec in plan.specs]
    counts = _binned_counts(cfg.data.path, pd.concat([train_rows, valid], ignore_index=True))
    train_rows = pd.concat([train_rows, counts.iloc[: len(train_rows)]], axis=1)
    valid = pd.concat([valid, counts.iloc[len(train_rows) :].reset_index(drop=True)], axis=1)
    for column in features:
        if not pd.api.types.is_numeric_dtype(train_rows[column]):
            kinds = pd.Categorical(pd.concat([train_rows[column], valid[column]])).categories
            for frame in (train_rows, valid):
                frame[column] = pd.Categorical(frame[column], categories=kinds)
    inner = (train_rows["as_of"] == train_rows["as_of"].max()).to_numpy()
    params = {k: v for k, v in DEFAULT_PARAMS.items() if k not in ("objective", "n_estimators")}

    def fitted(model: lgb.LGBMModel, columns: list[str], target: str) -> lgb.LGBMModel:
        known = train_rows[target].notna().to_numpy()  # a week-old customer has no truth yet
        x, y = train_rows[columns], train_rows[target]
        model.fit(
            x[~inner & known],
            y[~inner & known],
            eval_set=[(x[inner & known], y[inner & known])],
            callbacks=[lgb.early_stopping(100, verbose=False)],
        )
        return model

    scores = {
        name: fitted(
            lgb.LGBMClassifier(**params, n_estimators=2000), columns, "churned"
        ).predict_proba(valid[columns])[:, 1]
        for name, columns in (
            ("features", features),
            ("features + every week's counts", [*features, *counts.columns]),
            ("features + true engagement", [*features, "engagement"]),
        )
    }
    y = valid["churned"].to_numpy()
    intervals = bootstrap_intervals(y, scores)
    print("plain LightGBM on the features; with each event type's counts per week (26 weeks,")
    print("then per 30 days) beside them; with the true engagement beside them:")
    for name, score in scores.items():
        low, high = intervals[name]["roc_auc_score"]
        print(f"  {name:<32} ROC-AUC {roc_auc_score(y, score):.4f} ({low:.4f} to {high:.4f})")
    known = valid["engagement"].notna()
    for name, columns in (("features", features), ("+ counts", [*features, *counts.columns])):
        regression = fitted(lgb.LGBMRegressor(**params, n_estimators=2000), columns, "engagement")
        guess = regression.predict(valid[columns])[known]
        recovered = r2_score(valid.loc[known, "engagement"], guess)
        print(f"  engagement recovered from the {name}: R² {recovered:.3f}")


def _binned_counts(folder: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Per row of ``frame``, each event type's count in each week of the 26 before as_of, then
    in each 30 days before those: the whole history, finer than any window of the features."""
    con = duckdb.connect()
    con.register("rows", frame[["customer_id", "as_of"]].assign(_row=np.arange(len(frame))))
    counts = con.execute(
        """
        WITH aged AS (
          SELECT r._row, e.event_type,
                 (epoch(r.as_of) - epoch(e.timestamp)) / 86400.0 AS age
          FROM rows r JOIN read_parquet(?) e
            ON e.customer_id = r.customer_id AND e.timestamp < r.as_of)
        SELECT _row, event_type,
               CAST(CASE WHEN age < 182 THEN floor(age / 7)
                         ELSE 26 + floor((age - 182) / 30) END AS INTEGER) AS bin,
               count(*) AS n
        FROM aged GROUP BY ALL
        """,
        [str(folder / "events.parquet")],
    ).fetchdf()
    wide = counts.pivot_table(index="_row", columns=["event_type", "bin"], values="n")
    wide.columns = [f"_{kind}_{bin}" for kind, bin in wide.columns]
    return wide.reindex(np.arange(len(frame))).fillna(0.0).reset_index(drop=True)


def _expected_auc(cfg: cg.PipelineConfig, run: TrainingRun) -> float:
    """ROC-AUC of BG/NBD's expected purchases in the horizon (fewer: more likely to churn),
    fitted at the validation date on the purchases before it."""
    (when,) = run.split.validation
    dataset = cg.load_dataset(cfg.data)
    plan = cg.plan_features(dataset, config=cfg.features, horizon_days=cfg.churn.horizon_days)
    frame = cg.build_training_set(dataset, as_of=[when], churn=cfg.churn, plan=plan)
    x = frame["active_days_total"].to_numpy() - 1
    t_x = x * frame["activity_gap_mean_total"].fillna(0).to_numpy()
    T = np.ceil(frame["days_since_first_activity"].to_numpy())
    model = fit_bgnbd_at(dataset, [when], plan)[when]
    expected = model.expected(x, t_x, T, cfg.churn.horizon_days)
    return float(roc_auc_score(frame["churned"], -expected))


if __name__ == "__main__":
    main()
