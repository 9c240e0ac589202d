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

import numpy as np
from sklearn.metrics import roc_auc_score

import churnguard as cg
from churnguard.features import fit_bgnbd_at
from churnguard.retail import generate_purchases
from churnguard.synth import generate_entity_table
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
        if not (folder / "events.parquet").exists():
            cg.generate(folder, customers=20_000, days=730, seed=1)
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
