"""Benchmark: training on 1M rows x 100 features, against bare LightGBM on the same matrix.

Builds a seeded synthetic training set (95 numeric features, 5 categorical, churn about 6 %,
driven non-linearly by a dozen of them), with 1,000,000 training rows and 200,000 validation
rows, then, each in a fresh process so peak memory is its own:

* ``churnguard``: :func:`churnguard.model.fit`, i.e. LightGBM with early stopping, the
  calibration choice by cross-fitting, and the logistic baseline;
* ``reference``: ``lightgbm.train`` with the same parameters and the same number of rounds, no
  calibration and no baseline: the cost of the boosting alone.

It prints seconds, peak RSS and the ratio. Run from the repository root::

    python benchmarks/train.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 95, 5


def matrix(rows: int, seed: int) -> pd.DataFrame:
    """Features and a ``churned`` label whose log-odds depend non-linearly on 12 features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, NUMERIC)).astype(np.float32)
    frame = pd.DataFrame(x, columns=[f"x{i:02d}" for i in range(NUMERIC)])
    for j in range(CATEGORICAL):
        frame[f"c{j}"] = pd.Categorical(rng.choice([f"v{k}" for k in range(6 + 4 * j)], rows))
    logit = (
        -3.4
        + 0.9 * x[:, 0]
        - 0.7 * np.abs(x[:, 1])
        + 0.6 * x[:, 2] * x[:, 3]
        + 0.5 * (x[:, 4] > 1)
        + 0.4 * np.sin(2 * x[:, 5])
        + 0.3 * x[:, 6:12].sum(axis=1) / np.sqrt(6)
        + 0.5 * (frame["c0"] == "v1").to_numpy()
    )
    frame["churned"] = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def child(mode: str, rows: int) -> dict[str, float]:
    from churnguard.features import FeatureSpec
    from churnguard.model import DEFAULT_PARAMS, fit

    train, valid = matrix(rows, seed=1), matrix(rows // 5, seed=2)
    features = [
        FeatureSpec(name=c, description=c, stat="number")
        for c in train.columns
        if c.startswith("x")
    ] + [
        FeatureSpec(name=c, description=c, stat="category", kind="categorical")
        for c in train.columns
        if c.startswith("c") and c != "churned"
    ]
    began = time.perf_counter()
    out: dict[str, float] = {}
    if mode == "churnguard":
        result = fit(train, valid, features=features, seed=0)
        out["rounds"] = result.best_iteration
        from sklearn.metrics import roc_auc_score

        out["auc"] = float(roc_auc_score(valid["churned"], result.validation_probability))
    else:
        import lightgbm as lgb

        names = [s.name for s in features]
        lgb.train(
            {**DEFAULT_PARAMS, "seed": 0, "deterministic": True},
            lgb.Dataset(train[names], train["churned"]),
            num_boost_round=int(sys.argv[sys.argv.index("--rounds") + 1]),
        )
    out["seconds"] = time.perf_counter() - began
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run(mode: str, rows: int, rounds: int = 0) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, "--rows", str(rows)]
    command += ["--rounds", str(rounds)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return
    ours = run("churnguard", args.rows)
    # The reference boosts as many rounds as early stopping let ours run (best + patience).
    reference = run("reference", args.rows, int(ours["rounds"]) + 100)
    print(
        f"{args.rows:,} training rows x {NUMERIC + CATEGORICAL} features "
        f"(+{args.rows // 5:,} validation rows)"
    )
    print(
        f"churnguard fit   {ours['seconds']:.1f}s  peak {ours['peak_rss_mib']:,.0f} MiB  "
        f"best round {ours['rounds']:.0f}  validation ROC-AUC {ours['auc']:.4f}"
    )
    print(
        f"bare lightgbm    {reference['seconds']:.1f}s  peak "
        f"{reference['peak_rss_mib']:,.0f} MiB  ({ours['rounds']:.0f} + 100 rounds)"
    )
    print(f"ratio            {ours['seconds'] / reference['seconds']:.2f}x the boosting alone")


if __name__ == "__main__":
    main()
