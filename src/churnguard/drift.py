"""Population stability: how far today's features and scores have moved from training.

At training, :func:`reference` records, per feature, the decile edges of the training values (or
the category shares) and the share of rows in each bin, missing values as a bin of their own.
At scoring, :func:`stability` bins today's values on the same edges and returns the population
stability index PSI = Σ (today − train) · ln(today / train) over the bins. By the usual reading,
under 0.1 is stable, 0.1–0.25 a shift worth watching, over 0.25 a shift that needs a look
(``[drift] threshold``, see :class:`~churnguard.config.DriftConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnguard.features import FeatureSpec

_FLOOR = 1e-4  # share given to an empty bin, so ln() stays finite
_MAX_CATEGORIES = 30
SCORE = "churn_probability"


def reference(
    frame: pd.DataFrame, features: Sequence[FeatureSpec], score: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Bin edges and shares of each feature of ``frame``, and of ``score``, as plain JSON."""
    out = {s.name: _describe(frame[s.name], s.kind) for s in features}
    out[SCORE] = _describe(pd.Series(score), "numeric")
    return out


def stability(
    ref: dict[str, dict[str, Any]], frame: pd.DataFrame, score: np.ndarray
) -> dict[str, float]:
    """PSI of each referenced feature present in ``frame``, and of ``score``, rounded to 4 d.p."""
    columns = {**{c: frame[c] for c in frame.columns}, SCORE: pd.Series(score)}
    out = {}
    for name, spec in ref.items():
        if name not in columns:
            continue
        expected = np.asarray(spec["shares"], dtype=float)
        actual = _shares(columns[name], spec)
        e, a = np.maximum(expected, _FLOOR), np.maximum(actual, _FLOOR)
        out[name] = round(float(np.sum((a - e) * np.log(a / e))), 4)
    return out


def _describe(values: pd.Series, kind: str) -> dict[str, Any]:
    if kind == "categorical":
        counts = values.dropna().astype(str).value_counts()
        spec: dict[str, Any] = {
            "kind": "categorical",
            "categories": sorted(counts.index[:_MAX_CATEGORIES]),
        }
    else:
        numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(float)
        edges = np.unique(np.quantile(numbers, np.linspace(0.1, 0.9, 9))) if numbers.size else []
        spec = {"kind": "numeric", "edges": [float(e) for e in edges]}
    spec["shares"] = [float(s) for s in _shares(values, spec)]
    return spec


def _shares(values: pd.Series, spec: dict[str, Any]) -> np.ndarray:
    """Share of rows per bin: the value bins, then 'other' (categorical), then missing."""
    missing = values.isna().to_numpy()
    if spec["kind"] == "categorical":
        known = {c: i for i, c in enumerate(spec["categories"])}
        index = values.astype(str).map(known).fillna(len(known)).to_numpy(int)
        bins = len(known) + 1
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        index = np.searchsorted(np.asarray(spec["edges"], float), numbers, side="right")
        bins = len(spec["edges"]) + 1
    counts = np.bincount(index[~missing], minlength=bins).astype(float)
    counts = np.append(counts, missing.sum())
    return counts / max(1, values.size)
