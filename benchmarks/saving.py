"""Benchmark: the holdout comparison (``measure.saving``) against a pandas groupby reference.

The uplift learner calls ``saving`` once per intervention, problem and risk band, per fold, so
its cost is most of ``churnguard uplift``. This times its numpy counting of each stratum's
groups against the groupby counting it replaced (kept below as the reference; both then share
the interval arithmetic), in the same run, on logs of a few sizes with four list dates, checks
that both give the same figures, and prints the ratio::

    python benchmarks/saving.py
    python benchmarks/saving.py --repeat 200
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from churnguard.measure import Saving, saving, stratified


def reference(churned: np.ndarray, treated: np.ndarray, strata: np.ndarray) -> Saving:
    """The same figures, each stratum's groups counted by a pandas groupby (the replaced way)."""
    frame = pd.DataFrame({"y": churned.astype(float), "t": treated, "s": strata})
    n_t, n_h = int(frame["t"].sum()), int((~frame["t"]).sum())
    rate_t, rate_h = frame.loc[frame["t"], "y"].mean(), frame.loc[~frame["t"], "y"].mean()
    groups = frame.groupby(["s", "t"])["y"].agg(["sum", "count"]).unstack("t", fill_value=0)
    column = {
        (stat, side): groups[(stat, side)].to_numpy(float)
        for stat in ("sum", "count")
        for side in (True, False)
    }
    counts = Saving(n_t, n_h, rate_t, rate_h, *[math.nan] * 4)
    return stratified(
        counts,
        column[("sum", True)],
        column[("count", True)],
        column[("sum", False)],
        column[("count", False)],
    )


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
