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

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import norm

from churnguard.contract import GROUPS
from churnguard.errors import DataContractError

#: Columns a treatment log (``churnguard outcomes``) must have.
LOG_REQUIRED = ("customer_id", "as_of", "intervention", "group", "churned")
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
    y, t = np.asarray(churned, dtype=float), np.asarray(treated, dtype=bool)
    n_t, n_h = int(t.sum()), int((~t).sum())
    rate_t = float(y[t].mean()) if n_t else float("nan")
    rate_h = float(y[~t].mean()) if n_h else float("nan")
    code, labels = pd.factorize(np.zeros(len(y)) if strata is None else np.asarray(strata))
    known = code >= 0  # a decision without a stratum measures nothing
    y, t, code = y[known], t[known], code[known]
    k = len(labels)
    y_t, n_tt = np.bincount(code[t], y[t], k), np.bincount(code[t], minlength=k)
    y_h, n_hh = np.bincount(code[~t], y[~t], k), np.bincount(code[~t], minlength=k)
    return stratified(Saving(n_t, n_h, rate_t, rate_h, *[math.nan] * 4), y_t, n_tt, y_h, n_hh)


def stratified(
    counts: Saving, y_t: np.ndarray, n_tt: np.ndarray, y_h: np.ndarray, n_hh: np.ndarray
) -> Saving:
    """``counts`` (groups' sizes and churn) with the saving and its interval, from each
    stratum's churners and size in the treated (``y_t``, ``n_tt``) and holdout groups."""
    both = (n_tt > 0) & (n_hh > 0)
    if not both.any():
        return counts
    y_t, n_tt, y_h, n_hh = y_t[both], n_tt[both], y_h[both], n_hh[both]
    n_t, n_h, rate_t, rate_h = (
        counts.treated,
        counts.holdout,
        counts.churn_treated,
        counts.churn_holdout,
    )
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


def effects_by_intervention(log: pd.DataFrame) -> pd.DataFrame:
    """Treated and holdout counts, churn in each and the saving with its interval, per
    intervention (lists of different dates are compared within their date)."""
    rows = []
    for name, part in log.groupby("intervention", sort=True):
        measured = saving(part["churned"], part["group"] == "treated", part["as_of"])
        rows.append(
            {
                "intervention": name,
                "treated": measured.treated,
                "holdout": measured.holdout,
                "churn_treated": measured.churn_treated,
                "churn_holdout": measured.churn_holdout,
                "saving": measured.saving,
                "saving_low": measured.low,
                "saving_high": measured.high,
            }
        )
    return pd.DataFrame(rows, columns=list(_EFFECT_COLUMNS))


_EFFECT_COLUMNS = (
    "intervention",
    "treated",
    "holdout",
    "churn_treated",
    "churn_holdout",
    "saving",
    "saving_low",
    "saving_high",
)


def read_log(path: Path) -> pd.DataFrame:
    """The treatment log, checked: its columns, groups and 0/1 outcomes, and a holdout."""
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, ValueError) as exc:
        raise DataContractError(
            f"{path}: cannot be read as a treatment log (Parquet): {exc}"
        ) from None
    missing = [c for c in LOG_REQUIRED if c not in frame.columns]
    if missing:
        raise DataContractError(
            f"{path}, column '{missing[0]}': missing; a treatment log (churnguard outcomes) "
            f"has {', '.join(LOG_REQUIRED)}"
        )
    if frame.empty:
        raise DataContractError(f"{path}: no decisions in the treatment log")
    frame["group"] = frame["group"].astype(str)
    frame["intervention"] = frame["intervention"].astype(str)
    frame["customer_id"] = frame["customer_id"].astype(str)
    bad_group = ~frame["group"].isin(GROUPS)
    churned = pd.to_numeric(frame["churned"], errors="coerce")
    as_of = pd.to_datetime(frame["as_of"], errors="coerce")
    for column, bad, expected in (
        ("group", bad_group, f"a group: {' or '.join(GROUPS)}"),
        ("churned", ~churned.isin([0, 1]), "0 or 1"),
        ("as_of", as_of.isna(), "a date"),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataContractError(
                f"{path}, row {row + 1}, column '{column}': expected {expected}, got "
                f"{frame[column].iloc[row]!r}"
            )
    if not (frame["group"] == "holdout").any():
        raise DataContractError(f"{path}: no holdout rows: effects cannot be measured")
    frame["churned"] = churned.astype(int)
    frame["as_of"] = as_of.dt.tz_localize(None) if as_of.dt.tz is not None else as_of
    if "propensity" not in frame:
        frame["propensity"] = np.nan
    frame["propensity"] = pd.to_numeric(frame["propensity"], errors="coerce")
    return frame
