"""Model-quality metrics for churn scores: ranking, calibration, lift and capture, profit.

Every function takes the observed outcome ``y_true`` (0/1) and the predicted churn probability
``y_prob`` of the same customers. Names carry direction: ``*_score`` is better higher,
``*_loss`` and ``*_error`` better lower.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from churnguard.config import EvaluationConfig
from churnguard.errors import ConfigError

TOP_FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.20)


def _arrays(y_true: Sequence[int], y_prob: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    if y.shape != p.shape or y.ndim != 1 or y.size == 0:
        raise ConfigError(f"expected two equal-length 1-d arrays, got {y.shape} and {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ConfigError("y_true must hold only 0 and 1")
    return y, p


#: Equal-width probability bins of the calibration error.
ECE_BINS = 10


def expected_calibration_error(
    y_true: Sequence[int], y_prob: Sequence[float], *, n_bins: int = ECE_BINS
) -> float:
    """Weighted mean |observed rate − mean probability| over equal-width probability bins.

    Examples
    --------
    >>> expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    0.0
    """
    y, p = _arrays(y_true, y_prob)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    error = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        error += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(error)


def _ranked(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Outcomes ordered by descending probability (ties keep their input order)."""
    return y[np.argsort(-p, kind="stable")]


def lift_and_capture(
    y_true: Sequence[int], y_prob: Sequence[float], *, fractions: Sequence[float] = TOP_FRACTIONS
) -> dict[str, float]:
    """Lift (churn rate in the top fraction ÷ overall rate) and capture (share of all churners
    found there) for each top fraction, e.g. ``lift_top_10pct`` and ``capture_top_10pct``."""
    y, p = _arrays(y_true, y_prob)
    ranked = _ranked(y, p)
    base, churners = y.mean(), y.sum()
    out: dict[str, float] = {}
    for fraction in fractions:
        size = max(1, int(round(fraction * y.size)))
        top = ranked[:size]
        key = f"top_{round(fraction * 100)}pct"
        out[f"lift_{key}"] = float(top.mean() / base) if base else float("nan")
        out[f"capture_{key}"] = float(top.sum() / churners) if churners else float("nan")
    return out


def profit_curve(
    y_true: Sequence[int],
    y_prob: Sequence[float],
    *,
    cost: float,
    success_rate: float,
    value: float | Sequence[float],
) -> pd.DataFrame:
    """Profit of contacting the top ``k`` customers by probability, for every ``k``.

    A contacted churner is kept with probability ``success_rate`` and brings ``value``; every
    contact costs ``cost``. Columns: ``list_size``, ``expected_profit`` (cumulative).
    """
    y, p = _arrays(y_true, y_prob)
    values = np.broadcast_to(np.asarray(value, dtype=float), y.shape)
    order = np.argsort(-p, kind="stable")
    gain = y[order] * success_rate * values[order] - cost
    return pd.DataFrame(
        {
            "list_size": np.arange(0, y.size + 1),
            "expected_profit": np.concatenate([[0.0], np.cumsum(gain)]),
        }
    )


def list_profit_curve(y_true: Sequence[int], pricing: pd.DataFrame) -> pd.DataFrame:
    """Profit of the nightly list's first ``k`` rows, ranked by expected benefit, for every
    ``k`` (:func:`~churnguard.interventions.priced`): a contacted churner brings the saving of
    their intervention, every contact costs its own; rows no intervention fits are never
    listed. Columns as :func:`profit_curve`."""
    y = np.asarray(y_true, dtype=float)
    benefit = pricing["expected_benefit"].to_numpy(float)
    listable = np.flatnonzero(np.isfinite(benefit))
    order = listable[np.argsort(-benefit[listable], kind="stable")]
    gain = y[order] * pricing["saving"].to_numpy(float)[order]
    gain -= pricing["cost"].to_numpy(float)[order]
    return pd.DataFrame(
        {
            "list_size": np.arange(0, order.size + 1),
            "expected_profit": np.concatenate([[0.0], np.cumsum(gain)]),
        }
    )


#: List sizes whose profit is at least this share of the best make the plateau.
PLATEAU_SHARE = 0.95


def plateau(curve: pd.DataFrame, share: float = PLATEAU_SHARE) -> tuple[int, int]:
    """The smallest and largest list sizes around the best on a :func:`profit_curve` whose
    profit stays at least ``share`` of the best: where the best size really lies, since one
    more or fewer churner in the validation rows moves the single best point a long way. The
    best size alone when no list makes a profit."""
    profit = curve["expected_profit"].to_numpy()
    best = int(profit.argmax())
    if profit[best] <= 0:
        return (int(curve["list_size"].iloc[best]),) * 2
    keep = profit >= share * profit[best]
    low = best - int(np.argmin(keep[best::-1])) + 1 if not keep[: best + 1].all() else 0
    high = best + int(np.argmin(keep[best:])) - 1 if not keep[best:].all() else len(profit) - 1
    sizes = curve["list_size"].to_numpy()
    return int(sizes[low]), int(sizes[high])


def best_list_size(curve: pd.DataFrame) -> tuple[int, float]:
    """The list size with the highest profit on a :func:`profit_curve`, and that profit."""
    best = int(curve["expected_profit"].to_numpy().argmax())
    return int(curve["list_size"].iloc[best]), float(curve["expected_profit"].iloc[best])


def classification_metrics(y_true: Sequence[int], y_prob: Sequence[float]) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier, expected calibration error, lift and capture."""
    y, p = _arrays(y_true, y_prob)
    both = 0 < y.sum() < y.size
    return {
        "roc_auc_score": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc_score": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier_loss": float(brier_score_loss(y, p)),
        "expected_calibration_error": expected_calibration_error(y, p),
        "churn_rate": float(y.mean()),
        **lift_and_capture(y, p),
    }


def ranked_lists(
    y_prob: Sequence[float],
    value: Sequence[float],
    *,
    cost: float,
    success_rate: float,
    contacts: int,
) -> dict[str, np.ndarray]:
    """The ``contacts`` customers (row indices) a list picks by expected benefit
    (probability × value × success − cost) and by probability alone."""
    p = np.asarray(y_prob, dtype=float)
    v = np.asarray(value, dtype=float)
    keys = {"by_expected_benefit": p * v * success_rate - cost, "by_probability": p}
    return {name: np.argsort(-key, kind="stable")[:contacts] for name, key in keys.items()}


def ranking_comparison(
    y_true: Sequence[int],
    y_prob: Sequence[float],
    value: Sequence[float],
    *,
    cost: float,
    success_rate: float,
    contacts: int,
    resamples: int = 400,
    seed: int = 0,
) -> dict[str, object]:
    """Value saved by contacting ``contacts`` customers chosen by expected benefit against
    the same number chosen by probability alone, *assuming* the intervention keeps
    ``success_rate`` of the contacted churners.

    Saved value = Σ over contacted churners of value × success rate − contacts × cost, with the
    outcomes that actually happened; 95 % intervals from a bootstrap over customers (the lists
    chosen again on each resample). Nothing here measures the success rate itself: that is the
    treatment log's work (``measured``).
    """
    y, p = _arrays(y_true, y_prob)
    v = np.asarray(value, dtype=float)
    kw = {"cost": cost, "success_rate": success_rate, "contacts": contacts}

    def saved(rows: np.ndarray) -> dict[str, float]:
        lists = ranked_lists(p[rows], v[rows], **kw)
        return {
            name: float((y[rows][top] * v[rows][top]).sum() * success_rate - contacts * cost)
            for name, top in lists.items()
        }

    point = saved(np.arange(y.size))
    rng = np.random.default_rng(seed)
    draws = pd.DataFrame([saved(rng.integers(0, y.size, y.size)) for _ in range(resamples)])
    draws["difference"] = draws["by_expected_benefit"] - draws["by_probability"]
    point["difference"] = point["by_expected_benefit"] - point["by_probability"]
    out: dict[str, object] = {
        "basis": "assumed success rate",
        "success_rate": success_rate,
        "contacts": contacts,
        "budget": contacts * cost,
    }
    for name, figure in point.items():
        low, high = np.quantile(draws[name], [0.025, 0.975])
        out[name] = figure
        out[f"{name}_low"], out[f"{name}_high"] = float(low), float(high)
    return out


#: Bootstrap resamples behind the intervals of :func:`bootstrap_intervals`.
RESAMPLES = 200
#: The figures given with intervals.
INTERVAL_METRICS = (
    "roc_auc_score",
    "pr_auc_score",
    "expected_calibration_error",
    "lift_top_10pct",
)


def _resampled_metrics(
    y: np.ndarray, p: np.ndarray, order: np.ndarray, tie: np.ndarray, w: np.ndarray
) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), calibration error and lift at 10 % with row
    weights ``w`` (bootstrap counts), in one pass over the rows sorted by descending
    probability ``p`` (``order``; ``tie`` numbers groups of equal probability), as sklearn and
    :func:`expected_calibration_error` compute them unweighted."""
    bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
    gap = np.bincount(bins, w * y, minlength=ECE_BINS) - np.bincount(
        bins, w * p, minlength=ECE_BINS
    )
    pos = np.bincount(tie, (w * y)[order])
    total = np.bincount(tie, w[order])
    neg = total - pos
    positives, negatives = pos.sum(), neg.sum()
    above = np.cumsum(neg) - neg  # weighted negatives ranked above each group
    auc = 1 - (pos * (above + 0.5 * neg)).sum() / (positives * negatives)
    seen_pos, seen = np.cumsum(pos), np.cumsum(total)
    precision = np.divide(seen_pos, seen, out=np.zeros_like(seen_pos), where=seen > 0)
    ap = (pos / positives * precision).sum()
    weights = w[order]
    top = np.cumsum(weights) <= max(weights.sum() * 0.10, weights[weights > 0][0])
    lift = ((weights * y[order])[top].sum() / weights[top].sum()) / (positives / total.sum())
    return {
        "roc_auc_score": float(auc),
        "pr_auc_score": float(ap),
        "expected_calibration_error": float(np.abs(gap).sum() / w.sum()),
        "lift_top_10pct": float(lift),
    }


def bootstrap_intervals(
    y_true: Sequence[int],
    scores: dict[str, Sequence[float]],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """95 % intervals of :data:`INTERVAL_METRICS` for each named score, from one bootstrap over
    the rows shared by all scores (so differences between them are paired): per score and
    metric, ``[low, high]``; plus ``roc_auc_difference`` per pair ``"a - b"`` of the first score
    against each other."""
    y = np.asarray(y_true, dtype=float)
    rng = np.random.default_rng(seed)
    prepared = {}
    for name, score in scores.items():
        p = np.asarray(score, dtype=float)
        order = np.argsort(-p, kind="stable")
        tie = np.concatenate([[0], np.cumsum(np.diff(p[order]) != 0)])
        prepared[name] = (p, order, tie)
    draws: dict[str, list[dict[str, float]]] = {name: [] for name in scores}
    for _ in range(resamples):
        w = np.bincount(rng.integers(0, y.size, y.size), minlength=y.size).astype(float)
        if not 0 < (w * y).sum() < w.sum():
            continue
        for name, (p, order, tie) in prepared.items():
            draws[name].append(_resampled_metrics(y, p, order, tie, w))
    frames = {name: pd.DataFrame(rows) for name, rows in draws.items()}
    for name, frame in frames.items():
        # resampling adds noise, and noise adds calibration error: the draws sit above the
        # figure, so they are shifted back by their bias before the interval is read
        ece = frame["expected_calibration_error"]
        point = expected_calibration_error(y, np.asarray(scores[name], dtype=float))
        frame["expected_calibration_error"] = (ece - (ece.mean() - point)).clip(lower=0)
    out: dict[str, dict[str, list[float]]] = {
        name: {m: _interval(frame[m]) for m in INTERVAL_METRICS} for name, frame in frames.items()
    }
    first, *others = scores
    out["roc_auc_difference"] = {
        f"{first} - {other}": _interval(
            frames[first]["roc_auc_score"] - frames[other]["roc_auc_score"]
        )
        for other in others
    }
    return out


def _interval(values: pd.Series) -> list[float]:
    low, high = np.quantile(values, [0.025, 0.975])
    return [float(low), float(high)]


def verdict(difference: list[float]) -> str:
    """``better`` when the whole interval of model minus baseline is above zero, ``worse``
    when below, else ``level``."""
    low, high = difference
    return "better" if low > 0 else "worse" if high < 0 else "level"


@dataclass
class Evaluation:
    """Everything known about a model's predictions on a labelled set, for reports and JSON.

    ``true_hazard`` is the simulation's own hazard (generated data only): its ROC-AUC is the
    ceiling a model can reach on that data. ``pricing`` (each row's intervention as the nightly
    list chooses it) prices the profit curve as the night does; without it, or when no
    intervention fits anyone, the ``campaign`` does.
    """

    y_true: np.ndarray
    probability: np.ndarray
    campaign: EvaluationConfig
    baseline_probability: np.ndarray | None = None
    #: The model in service (the registry's champion) on the same rows, when comparable.
    champion_probability: np.ndarray | None = None
    #: A BG/NBD model's chance of no activity in the horizon, the classic of purchase logs.
    bgnbd_probability: np.ndarray | None = None
    true_hazard: np.ndarray | None = None
    importance: pd.DataFrame | None = None
    #: Each customer's value (see :mod:`churnguard.value`); enables :attr:`ranking`.
    customer_value: np.ndarray | None = None
    metrics: dict[str, dict[str, float]] = field(init=False)
    #: Benefit-ranked against probability-ranked lists at a budget of 10 % of the customers,
    #: under the campaign's assumed success rate, with bootstrap intervals.
    ranking: dict[str, object] | None = field(init=False, default=None)
    #: Churn saved per intervention, measured against randomised holdouts (a treatment log).
    measured: pd.DataFrame | None = None
    #: ``expected_benefit``, ``cost`` and ``saving`` per row (``interventions.priced``).
    pricing: pd.DataFrame | None = field(default=None, repr=False)
    profit: pd.DataFrame = field(init=False, repr=False)
    #: What prices :attr:`profit`: ``catalogue`` (the nightly list's) or ``campaign``.
    profit_basis: str = field(init=False, default="campaign")
    #: 95 % bootstrap intervals per score and metric, and of the model's ROC-AUC lead.
    intervals: dict[str, dict[str, list[float]]] = field(init=False, default_factory=dict)
    #: The model against each other score on the same rows (``baseline``, ``champion``,
    #: ``bgnbd``):
    #: better, level or worse, by :func:`verdict` on the paired ROC-AUC difference.
    against: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        scores = {"model": self.probability}
        if self.baseline_probability is not None:
            scores["baseline"] = self.baseline_probability
        if self.champion_probability is not None:
            scores["champion"] = self.champion_probability
        if self.bgnbd_probability is not None:
            scores["bgnbd"] = self.bgnbd_probability
        self.metrics = {who: classification_metrics(self.y_true, p) for who, p in scores.items()}
        if 0 < self.y_true.sum() < self.y_true.size:
            self.intervals = bootstrap_intervals(self.y_true, scores)
            self.against = {
                other: verdict(self.intervals["roc_auc_difference"][f"model - {other}"])
                for other in scores
                if other != "model"
            }
        if self.true_hazard is not None:
            known = ~np.isnan(self.true_hazard)
            y = self.y_true[known]
            self.metrics["true_hazard"] = {
                "roc_auc_score": float(roc_auc_score(y, self.true_hazard[known]))
                if 0 < y.sum() < y.size
                else float("nan"),
                "rows": int(known.sum()),
            }
        if self.customer_value is not None:
            self.ranking = ranking_comparison(
                self.y_true,
                self.probability,
                self.customer_value,
                cost=self.campaign.intervention_cost,
                success_rate=self.campaign.success_rate,
                contacts=max(1, self.y_true.size // 10),
            )
        if self.pricing is not None and np.isfinite(self.pricing["expected_benefit"]).any():
            self.profit = list_profit_curve(self.y_true, self.pricing)
            self.profit_basis = "catalogue"
        else:
            self.profit = profit_curve(
                self.y_true,
                self.probability,
                cost=self.campaign.intervention_cost,
                success_rate=self.campaign.success_rate,
                value=self.campaign.customer_value,
            )

    @property
    def best_list_size(self) -> tuple[int, float]:
        """The list size that maximises expected profit, and that profit."""
        return best_list_size(self.profit)

    @property
    def best_list_range(self) -> tuple[int, int]:
        """The list sizes whose profit is within 5 % of the best (:func:`plateau`)."""
        return plateau(self.profit)

    def lead(self, other: str) -> str | None:
        """The model against ``other`` (``baseline``, ``champion``, ``bgnbd``) in words:
        verdict, ROC-AUC lead and its 95 % interval; None when ``other`` was not compared."""
        if other not in self.against:
            return None
        low, high = self.intervals["roc_auc_difference"][f"model - {other}"]
        lead = self.metrics["model"]["roc_auc_score"] - self.metrics[other]["roc_auc_score"]
        return f"{self.against[other]}: ROC-AUC lead {lead:+.4f} ({low:+.4f} to {high:+.4f}, 95 %)"

    @property
    def auc_gap(self) -> float | None:
        """True-hazard ROC-AUC minus the model's (None without a truth table)."""
        if "true_hazard" not in self.metrics:
            return None
        return (
            self.metrics["true_hazard"]["roc_auc_score"] - self.metrics["model"]["roc_auc_score"]
        )

    def to_json(self) -> dict[str, object]:
        """Metrics, the profit optimum and the campaign, ready for ``json.dumps``."""
        size, profit = self.best_list_size
        return {
            **self.metrics,
            "rows": int(self.y_true.size),
            "true_hazard_gap": self.auc_gap,
            "intervals": self.intervals,
            "against_baseline": self.against.get("baseline"),
            "against_champion": self.against.get("champion"),
            "against_bgnbd": self.against.get("bgnbd"),
            "ranking": self.ranking,
            "measured": None
            if self.measured is None
            else json.loads(self.measured.to_json(orient="records")),
            "profit": {
                "basis": self.profit_basis,
                **(dataclasses.asdict(self.campaign) if self.profit_basis == "campaign" else {}),
                "best_list_size": size,
                "best_list_range": list(self.best_list_range),
                "best_list_share": size / self.y_true.size,
                "best_expected_profit": profit,
            },
        }
