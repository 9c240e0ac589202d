"""What a randomised holdout measures: the churn an intervention saved, with an interval.

The saving is the holdout's churn rate minus the treated one's. Lists of different nights may
hold back different shares of customers with different risks, so pooling every row would mix
the two (Simpson's paradox): the difference is taken within each stratum (a list's date) and
averaged with the stratum's share of the decisions as weight. The 95 % interval uses the
Agresti–Caffo adjustment (one churner and one stayer added to each group of each stratum),
which keeps its coverage near 95 % down to a few dozen customers per group, where the plain
normal interval is too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

#: The normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Saving:
    """Churn saved by treating: holdout minus treated churn, with its 95 % interval."""

    treated: int
    holdout: int
    churn_treated: float
    churn_holdout: float
    saving: float
    low: float
    high: float
    se: float

    @property
    def measured(self) -> bool:
        """Whether both groups have rows (otherwise nothing was measured)."""
        return self.treated > 0 and self.holdout > 0


def saving(churned: np.ndarray, treated: np.ndarray, strata: np.ndarray | None = None) -> Saving:
    """The churn saved by treatment among these decisions.

    Parameters
    ----------
    churned : 0/1 outcome per decision.
    treated : True for the treated group, False for the holdout.
    strata : a label per decision (e.g. the list's date); strata lacking either group are left
        out of the difference, as they measure nothing.
    """
    frame = pd.DataFrame(
        {
            "y": np.asarray(churned, dtype=float),
            "t": np.asarray(treated, dtype=bool),
            "s": np.zeros(len(churned)) if strata is None else np.asarray(strata),
        }
    )
    n_t, n_h = int(frame["t"].sum()), int((~frame["t"]).sum())
    rate_t = float(frame.loc[frame["t"], "y"].mean()) if n_t else float("nan")
    rate_h = float(frame.loc[~frame["t"], "y"].mean()) if n_h else float("nan")
    groups = frame.groupby(["s", "t"])["y"].agg(["sum", "count"]).unstack("t")
    both = pd.MultiIndex.from_product([["sum", "count"], [False, True]])
    groups = groups.reindex(columns=both).dropna()
    if groups.empty:
        nan = float("nan")
        return Saving(n_t, n_h, rate_t, rate_h, nan, nan, nan, nan)
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


def customers_needed(rate: float, effect: float, *, power: float = 0.8) -> int:
    """Customers per group a two-sided 5 % test needs to detect a drop of ``effect`` in a
    churn rate of ``rate`` with the given power (normal approximation, equal groups)."""
    treated = min(max(rate - effect, 1e-9), 1.0)
    spread = rate * (1 - rate) + treated * (1 - treated)
    return int(np.ceil((Z95 + norm.ppf(power)) ** 2 * spread / effect**2))
