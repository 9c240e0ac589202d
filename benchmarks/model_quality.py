"""Out-of-time model quality on generated data, beside the true hazard and the baseline.

Generates (once, cached under ``data/bench/``) 20,000 customers over 730 days with seed 1 (the
same data as ``churnguard generate --customers 20000 --days 730 --seed 1``), trains with the demo
config exactly as ``churnguard train`` does, and reports on the held-out latest snapshot: ROC-AUC
of the model, of the logistic baseline and of the simulation's true hazard (the best any model
could do), with 95 % bootstrap intervals and the verdict against the baseline, calibration, and
the profit-maximising list size.

    python benchmarks/model_quality.py [--tune]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import churnguard as cg
from churnguard.training import train

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    folder = ROOT / "data" / "bench" / "c20000-d730-s1"
    if not (folder / "events.parquet").exists():
        cg.generate(folder, customers=20_000, days=730, seed=1)
    with tempfile.TemporaryDirectory() as registry:
        cfg = cg.load_config(
            ROOT / "pipelines" / "demo.toml", {"data.path": folder, "model.registry": registry}
        )
        began = time.perf_counter()
        run = train(cfg, tune_params="--tune" in sys.argv)
        seconds = time.perf_counter() - began
    ev = run.evaluation
    model, baseline = ev.metrics["model"], ev.metrics["baseline"]
    true_auc = ev.metrics["true_hazard"]["roc_auc_score"]
    print(
        f"training rows {run.train_rows:,} ({run.train_churn_rate:.1%} churn) over "
        f"{len(run.split.train)} snapshots; validation {run.validation_rows:,} at "
        f"{run.split.validation[0].date()}; {seconds:.1f}s (features, fit, report)"
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
    lead = ev.intervals["roc_auc_difference"]["model - baseline"]
    print(
        f"95 %     model ROC-AUC {auc[0]:.4f} to {auc[1]:.4f}; lead over the baseline "
        f"{lead[0]:+.4f} to {lead[1]:+.4f}: {ev.against['baseline']}"
    )
    size, profit = ev.best_list_size
    print(
        f"PR-AUC {model['pr_auc_score']:.4f}  Brier {model['brier_loss']:.4f}  "
        f"lift@10% {model['lift_top_10pct']:.2f}  capture@20% {model['capture_top_20pct']:.2f}  "
        f"best list {size:,} ({size / run.validation_rows:.1%}), profit {profit:,.0f}"
    )


if __name__ == "__main__":
    main()
