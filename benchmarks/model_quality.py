"""Out-of-time model quality on generated data, beside the true hazard and the baseline.

Generates (once, cached under ``data/bench/``) 20,000 customers over 730 days with seed 1, builds
the demo config's training snapshots, trains, and reports on the held-out latest snapshot:
ROC-AUC of the model, of the logistic baseline, and of the simulation's true hazard at the last
weekly grid date on or before the as-of date (the best any model could do), plus calibration.

    python benchmarks/model_quality.py
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
from sklearn.metrics import roc_auc_score

import churnguard as cg
from churnguard.evaluation import classification_metrics
from churnguard.model import fit

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    folder = ROOT / "data" / "bench" / "c20000-d730-s1"
    if not (folder / "events.parquet").exists():
        cg.generate(folder, customers=20_000, days=730, seed=1)
    cfg = cg.load_config(ROOT / "pipelines" / "demo.toml", {"data.path": folder})
    data = cg.load_dataset(cfg.data, definition=cfg.churn.definition, engine=cfg.engine)
    began = time.perf_counter()
    train, valid, split = cg.training_frames(data, train=cfg.train, churn=cfg.churn)
    plan = cg.plan_features(data, config=cfg.features)
    result = fit(train, valid, features=list(plan.specs), seed=1)
    seconds = time.perf_counter() - began

    as_of = split.validation[0].date()
    truth = (
        duckdb.connect()
        .execute(
            "SELECT customer_id, hazard FROM read_parquet(?) WHERE date = "
            "(SELECT max(date) FROM read_parquet(?) WHERE date <= ?)",
            [str(folder / "truth.parquet"), str(folder / "truth.parquet"), as_of],
        )
        .df()
    )
    scored = valid[["customer_id", "churned"]].merge(truth, on="customer_id")
    model = classification_metrics(valid["churned"], result.validation_probability)
    baseline = classification_metrics(valid["churned"], result.baseline_probability)
    true_auc = roc_auc_score(scored["churned"], scored["hazard"])

    print(
        f"training rows {len(train):,} ({train['churned'].mean():.1%} churn) over "
        f"{len(split.train)} snapshots; validation {len(valid):,} at {as_of}; {seconds:.1f}s"
    )
    print(
        f"ROC-AUC  model {model['roc_auc_score']:.4f}  baseline {baseline['roc_auc_score']:.4f}"
        f"  true hazard {true_auc:.4f}  gap {true_auc - model['roc_auc_score']:+.4f}"
    )
    print(
        f"ECE      model {model['expected_calibration_error']:.4f}  baseline "
        f"{baseline['expected_calibration_error']:.4f}; calibration chosen: "
        f"{result.model.calibrator.method} (out-of-fold log loss {result.calibration_log_loss})"
    )
    print(
        f"PR-AUC {model['pr_auc_score']:.4f}  Brier {model['brier_loss']:.4f}  "
        f"lift@10% {model['lift_top_10pct']:.2f}  capture@20% {model['capture_top_20pct']:.2f}"
    )


if __name__ == "__main__":
    main()
