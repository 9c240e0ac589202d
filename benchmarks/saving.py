"""Benchmark: the holdout comparison (``measure.saving``) against a pandas groupby reference.

The uplift learner calls ``saving`` once per intervention, problem and risk band, per fold, so
its cost is most of ``churnguard uplift``. This times the numpy version against the groupby
one it replaced (kept below as the reference), in the same run, on logs of a few sizes with
four list dates, checks that both give the same figures, and prints the ratio::

    python benchmarks/saving.py
    python benchmarks/saving.py --repeat 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from churnguard.measure import Z95, Saving, saving


def reference(churned: np.ndarray, treated: np.ndarray, strata: np.ndarray) -> Saving:
    """The same stratified difference and Agresti-Caffo interval, by a pandas groupby."""
    frame = pd.DataFrame({"y": churned.astype(float), "t": treated, "s": strata})
    n_t, n_h = int(frame["t"].sum()), int((~frame["t"]).sum())
    rate_t, rate_h = frame.loc[frame["t"], "y"].mean(), frame.loc[~frame["t"], "y"].mean()
    groups = frame.groupby(["s", "t"])["y"].agg(["sum", "count"]).unstack("t")
    both = pd.MultiIndex.from_product([["sum", "count"], [False, True]])
    groups = groups.reindex(columns=both).dropna()
    y_t, n_tt = groups[("sum", True)], groups[("count", True)]
    y_h, n_hh = groups[("sum", False)], groups[("count", False)]
    weight = (n_tt + n_hh) / (n_tt + n_hh).sum()
    difference = float((weight * (y_h / n_hh - y_t / n_tt)).sum())
    adjusted_t, adjusted_h = (y_t + 1) / (n_tt + 2), (y_h + 1) / (n_hh + 2)
    centre = float((weight * (adjusted_h - adjusted_t)).sum())
    variance = (weight**2) * (
        adjusted_t * (1 - adjusted_t) / (n_tt + 2) + adjusted_h * (1 - adjusted_h) / (n_hh + 2)
    )
    se = float(np.sqrt(variance.sum()))
    return Saving(n_t, n_h, rate_t, rate_h, difference, centre - Z95 * se, centre + Z95 * se, se)


def timed(function, args: tuple, repeat: int) -> tuple[float, Saving]:
    start = time.perf_counter()
    for _ in range(repeat):
        result = function(*args)
    return (time.perf_counter() - start) / repeat, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100)
    repeat = parser.parse_args().repeat
    rng = np.random.default_rng(0)
    print(f"{'decisions':>10} {'numpy ms':>9} {'pandas ms':>10} {'speed-up':>9}")
    for n in (200, 2_000, 20_000):
        args = (
            (rng.random(n) < 0.2).astype(float),
            rng.random(n) < 0.9,
            rng.choice(np.array(["2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01"]), n),
        )
        fast, got = timed(saving, args, repeat)
        slow, expected = timed(reference, args, repeat)
        assert np.allclose(
            [got.saving, got.low, got.high], [expected.saving, expected.low, expected.high]
        ), (got, expected)
        print(f"{n:>10,} {fast * 1e3:>9.3f} {slow * 1e3:>10.3f} {slow / fast:>8.1f}x")


if __name__ == "__main__":
    main()
