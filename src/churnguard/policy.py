"""Learned effects and the decisions they make: whom to contact, with what, and is it better.

**Groups.** A decision's group is its intervention and whether the customer had the problem the
intervention addresses (its catalogue ``problem``). Where the interventions themselves were
drawn at random, every customer held out with an intervention's problem is a control for it,
whatever arm they drew (see :mod:`churnguard.uplift`). In each group a logistic model with the
churn model's log-odds ``o = logit p`` as offset, ``logit P(churn) = o + a + treated × (b + c ×
(o − ō))``, measures the intervention's effect ``b`` as a change in the odds of churning at the
treated customers' mean log-odds ``ō``, learned from every risk level at once: a customer's
uplift ``expit(o + a) − expit(o + a + b + c (o − ō))`` grows with their risk as an effect on the
hazard does, unless the riskiest respond less (``c > 0``: lost causes, whose risk comes from
having given up). ``c`` has a normal prior of standard deviation :data:`SLOPE_PRIOR_SD`, so a
small group keeps one odds ratio for every risk. Help is *shown* where ``b`` is below zero at a
false discovery rate of 5 % over all the groups tested (Benjamini–Hochberg on one-sided
p-values), so that of the groups contacted on the evidence, few are flukes.

**The catalogue as a prior** (``[uplift] prior = "catalogue"``). Each group's estimate ``b ±
se`` then meets a normal prior centred on the effect the catalogue assumes, ``log(1 −
success_rate)`` for the customers an intervention is meant for (0 for those it is not), with
the variance by which the groups' estimates stray from their assumed effects beyond sampling
error (method of moments, empirical Bayes): where the catalogue is borne out, small groups
borrow its strength; where it is not, the spread grows and the evidence decides. A group is
then shown where the posterior's one-sided 95 % bound is below zero. The measured estimates
and the assumed ones are kept in ``Effects.prior``.

**Segments**, the groups split by band of churn probability, report the plain treated-minus-
holdout difference (:func:`churnguard.measure.saving`), shrunk toward the band's siblings
(DerSimonian–Laird between-band variance, empirical Bayes), for the report and ``effects.csv``.

**Policy.** A customer may get an intervention only where its group shows help; among those,
the one with the largest ``uplift × value − cost`` is chosen, if positive. A group where
nothing can be shown to help is not contacted.

**Off-policy check.** On decisions the effects were not learned from, the doubly robust estimate
of a policy's value per decision is ``m(x, π(x)) + 1{a = π(x)} / propensity × (r − m(x, a))``,
with reward ``r = −churned × value − cost`` and the direct model ``m`` from the churn
probability and the learned uplift. The difference between two policies, row by row, gives a
mean and a 95 % interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import norm

from churnguard.config import InterventionConfig
from churnguard.errors import ConfigError
from churnguard.measure import Z95, customers_needed, saving

#: The false discovery rate at which segments are shown to help.
FDR = 0.05
#: How far the effect may change per unit of churn log-odds before the data say so.
SLOPE_PRIOR_SD = 0.5
#: The least variance of the catalogue prior: groups that all agree with the catalogue still
#: leave it a standard deviation of 0.01 in log-odds.
MIN_PRIOR_VAR = 1e-4
#: A catalogue's success rate of 1 (every would-be churner kept) is read as this, so that the
#: prior's log-odds stay finite.
MAX_ASSUMED_SUCCESS = 0.99
#: The normal quantile of a one-sided 95 % bound.
ONE_SIDED_95 = float(norm.ppf(0.95))
FORMAT = 2
SEGMENT_COLUMNS = (
    "intervention",
    "problem",
    "band",
    "treated",
    "holdout",
    "saving",
    "se",
    "uplift",
    "uplift_se",
    "low",
    "high",
    "shown",
)
GROUP_COLUMNS = (
    "intervention",
    "problem",
    "treated",
    "holdout",
    "shift",
    "log_odds",
    "log_odds_se",
    "risk_slope",
    "centre",
    "shown",
)
POOLED_COLUMNS = (
    "intervention",
    "treated",
    "holdout",
    "churn_treated",
    "churn_holdout",
    "saving",
    "low",
    "high",
    "between_segments_sd",
    "break_even",
    "needed_per_group",
)


@dataclass(frozen=True)
class Effects:
    """Uplift per intervention, problem and probability band, learned from a treatment log."""

    interventions: tuple[str, ...]
    #: Probability band edges: band ``b`` holds ``cuts[b-1] <= p < cuts[b]``.
    cuts: tuple[float, ...]
    segments: pd.DataFrame
    pooled: pd.DataFrame
    #: Per intervention and problem flag: the fitted shift, log-odds effect at the ``centre``
    #: log-odds, its change per unit of log-odds (``risk_slope``) and whether shown.
    groups: pd.DataFrame
    promote: bool = False
    evaluation: dict[str, Any] = field(default_factory=dict)
    method: str = "segments"
    #: With a catalogue prior: its spread and, per group, the assumed and measured effects.
    prior: dict[str, Any] = field(default_factory=dict)

    def lookup(
        self, names: list[str], problems: np.ndarray, probability: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's uplift for each intervention of ``names`` (NaN where unknown) and whether
        it is shown; ``problems[i, k]``: row ``i`` has the problem of ``names[k]``."""
        n, k = len(probability), len(names)
        uplift, shown = np.full((n, k), np.nan), np.zeros((n, k), dtype=bool)
        odds = logit(np.clip(np.asarray(probability, float), 1e-6, 1 - 1e-6))
        for row in self.groups.itertuples():
            if row.intervention not in names or not np.isfinite(row.log_odds):
                continue
            j = names.index(row.intervention)
            where = problems[:, j] == row.problem
            base = odds[where] + row.shift
            effect = row.log_odds + row.risk_slope * (odds[where] - row.centre)
            uplift[where, j] = expit(base) - expit(base + effect)
            shown[where, j] = bool(row.shown)
        return uplift, shown

    def to_json(self) -> str:
        """The ``effects.json`` text (missing figures as null)."""
        data = {
            "format": FORMAT,
            "method": self.method,
            "interventions": list(self.interventions),
            "probability_cuts": list(self.cuts),
            "promote": self.promote,
            "evaluation": self.evaluation,
            "groups": _records(self.groups),
            "segments": _records(self.segments),
            "pooled": _records(self.pooled),
            "prior": self.prior,
        }
        return json.dumps(data, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Effects:
        """Read an ``effects.json`` back, checking every field: it is input like any other."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: not an effects file (not JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{source}: not an effects file of format {FORMAT}")
        names = _strings(data.get("interventions"), source, "interventions")
        cuts = _numbers(data.get("probability_cuts"), source, "probability_cuts")
        if list(cuts) != sorted(cuts) or any(not 0 <= c <= 1 for c in cuts):
            raise ConfigError(f"{source}: probability_cuts must rise within 0 to 1")
        segments = _frame(data.get("segments"), SEGMENT_COLUMNS, source, "segments")
        groups = _frame(data.get("groups"), GROUP_COLUMNS, source, "groups")
        unknown = (set(segments["intervention"]) | set(groups["intervention"])) - set(names)
        if unknown:
            raise ConfigError(
                f"{source}: segments name unknown intervention {sorted(unknown)[0]!r}"
            )
        if not isinstance(data.get("promote"), bool):
            raise ConfigError(f"{source}: promote must be true or false")
        prior = data.get("prior") or {}
        if not isinstance(prior, dict):
            raise ConfigError(f"{source}: prior must be a record")
        return cls(
            interventions=tuple(names),
            cuts=tuple(cuts),
            segments=segments,
            pooled=_frame(data.get("pooled"), POOLED_COLUMNS, source, "pooled"),
            groups=groups,
            promote=data["promote"],
            evaluation=data.get("evaluation") or {},
            method=str(data.get("method", "segments")),
            prior=prior,
        )


def band_of(cuts: tuple[float, ...], probability: np.ndarray) -> np.ndarray:
    """Each probability's band: ``b`` where ``cuts[b-1] <= p < cuts[b]``."""
    return np.searchsorted(np.asarray(cuts, float), probability, side="right")


def band_cuts(probability: np.ndarray, bands: int) -> tuple[float, ...]:
    """Edges splitting ``probability`` into ``bands`` bands of equal size (quantiles)."""
    if bands <= 1 or probability.size == 0:
        return ()
    edges = np.quantile(probability, np.arange(1, bands) / bands)
    return tuple(float(round(e, 6)) for e in np.unique(edges))


def learn(
    decisions: pd.DataFrame,
    problem: np.ndarray,
    names: list[str],
    cuts: tuple[float, ...],
    costs: np.ndarray,
    controls: np.ndarray | None = None,
    assumed: dict[tuple[str, bool], float] | None = None,
) -> Effects:
    """Effects from labelled decisions: ``intervention``, ``group``, ``churned``, ``as_of``,
    ``churn_probability`` and ``customer_value`` per row; ``problem[i]``: row ``i``'s customer had
    the problem of the row's own intervention; ``controls[i, k]``: holdout row ``i`` is also a
    control for intervention ``k``'s customers with its problem (none when None); ``assumed``:
    the log-odds effect the catalogue assumes per (intervention, problem flag), the prior
    (:func:`assumed_effects`; none when None)."""
    if controls is None:
        controls = np.zeros((len(decisions), len(names)), dtype=bool)
    band = band_of(cuts, decisions["churn_probability"].to_numpy(float))
    segments, pooled, groups = [], [], []
    for k, name in enumerate(names):
        mine = (decisions["intervention"] == name).to_numpy()
        rows = decisions[mine]
        overall = saving(rows["churned"], rows["group"] == "treated", rows["as_of"])
        found, spread = [], []
        for flag in (False, True):
            if (problem[mine] == flag).any():
                fit = (mine & (problem == flag)) | (controls[:, k] & flag)
                groups.append(
                    {"intervention": name, "problem": flag, **_odds_effect(decisions[fit])}
                )
            group = []
            for b in range(len(cuts) + 1):
                part = (problem[mine] == flag) & (band[mine] == b)
                if not part.any():
                    continue
                sub = rows[part]
                s = saving(sub["churned"], sub["group"] == "treated", sub["as_of"])
                group.append({"intervention": name, "problem": flag, "band": b, "measured": s})
            tau = _shrink(group)
            if tau is not None:
                spread.append(tau)
            found += group
        tau = max(spread) if spread else None
        for seg in found:
            s = seg.pop("measured")
            segments.append(
                {**seg, "treated": s.treated, "holdout": s.holdout, "saving": s.saving, "se": s.se}
            )
        value = rows["customer_value"].to_numpy(float)
        worth = float(np.nanmean(value)) if np.isfinite(value).any() else math.nan
        break_even = costs[k] / worth if worth and worth > 0 else math.nan
        base = overall.churn_holdout
        needed = (
            customers_needed(base, break_even)
            if overall.holdout and 0 < break_even < base
            else None
        )
        pooled.append(
            {
                "intervention": name,
                "treated": overall.treated,
                "holdout": overall.holdout,
                "churn_treated": overall.churn_treated,
                "churn_holdout": overall.churn_holdout,
                "saving": overall.saving,
                "low": overall.low,
                "high": overall.high,
                "between_segments_sd": math.sqrt(tau) if tau is not None else math.nan,
                "break_even": break_even,
                "needed_per_group": needed,
            }
        )
    fitted = pd.DataFrame(groups, columns=list(GROUP_COLUMNS[:-1]))
    prior: dict[str, Any] = {}
    if assumed is None:
        fitted["shown"] = shown(
            -fitted["log_odds"].to_numpy(float), fitted["log_odds_se"].to_numpy(float)
        )
    else:
        fitted, prior = _with_prior(fitted, assumed)
    frame = pd.DataFrame(segments)
    if frame.empty:
        frame = pd.DataFrame(columns=list(SEGMENT_COLUMNS))
    else:
        frame = frame.rename(columns={"_uplift": "uplift", "_uplift_se": "uplift_se"})
        frame["low"] = frame["uplift"] - Z95 * frame["uplift_se"]
        frame["high"] = frame["uplift"] + Z95 * frame["uplift_se"]
        flags = fitted.set_index(["intervention", "problem"])["shown"]
        frame["shown"] = [
            bool(flags.get((r.intervention, r.problem), False)) for r in frame.itertuples()
        ]
        frame = frame[list(SEGMENT_COLUMNS)]
    return Effects(
        interventions=tuple(names),
        cuts=cuts,
        segments=frame,
        pooled=pd.DataFrame(pooled, columns=list(POOLED_COLUMNS)),
        groups=fitted[list(GROUP_COLUMNS)],
        prior=prior,
    )


def assumed_effects(
    catalogue: Sequence[InterventionConfig],
) -> dict[tuple[str, bool], float]:
    """The log-odds effect the catalogue assumes per (intervention, problem flag): ``log(1 −
    success_rate)`` where the intervention is meant for the customer (it addresses their
    problem, or it is meant for anyone), 0 where it is not."""
    return {
        (i.name, flag): math.log1p(-min(i.success_rate, MAX_ASSUMED_SUCCESS))
        if flag or not i.problem
        else 0.0
        for i in catalogue
        for flag in (False, True)
    }


def _with_prior(
    fitted: pd.DataFrame, assumed: dict[tuple[str, bool], float]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The groups' posterior effects under the catalogue prior, shown where the posterior's
    one-sided 95 % bound is below zero, and the record of what went in."""
    fitted = fitted.copy()
    b = fitted["log_odds"].to_numpy(float)
    se = fitted["log_odds_se"].to_numpy(float)
    prior = np.array([assumed[(r.intervention, bool(r.problem))] for r in fitted.itertuples()])
    ok = np.isfinite(b) & np.isfinite(se) & (se > 0)
    # how far the groups stray from the catalogue beyond their sampling error
    spread = (
        max(float(np.mean((b[ok] - prior[ok]) ** 2 - se[ok] ** 2)), MIN_PRIOR_VAR)
        if ok.any()
        else MIN_PRIOR_VAR
    )
    precision = 1 / se[ok] ** 2 + 1 / spread
    posterior = (b[ok] / se[ok] ** 2 + prior[ok] / spread) / precision
    posterior_se = precision**-0.5
    record = {
        "source": "catalogue",
        "spread_sd": math.sqrt(spread),
        "groups": [
            {
                "intervention": r.intervention,
                "problem": bool(r.problem),
                "assumed": float(a),
                "measured": _finite(r.log_odds),
                "measured_se": _finite(r.log_odds_se),
            }
            for r, a in zip(fitted.itertuples(), prior, strict=True)
        ],
    }
    fitted.loc[ok, "log_odds"] = posterior
    fitted.loc[ok, "log_odds_se"] = posterior_se
    fitted["shown"] = False
    fitted.loc[ok, "shown"] = posterior + ONE_SIDED_95 * posterior_se < 0
    return fitted, record


def _odds_effect(rows: pd.DataFrame) -> dict[str, float | int]:
    """Maximum a posteriori fit of ``logit P(churn) = o + shift + treated × (log_odds +
    risk_slope × (o − centre))`` on a group's decisions (Newton's method; ``o`` the churn
    model's log-odds, ``centre`` its mean over the treated), with the standard error of
    ``log_odds``; NaN when one arm is missing or the fit does not settle (no churner, say)."""
    treated = (rows["group"] == "treated").to_numpy(float)
    y = rows["churned"].to_numpy(float)
    offset = logit(np.clip(rows["churn_probability"].to_numpy(float), 1e-6, 1 - 1e-6))
    counts = {"treated": int(treated.sum()), "holdout": int((1 - treated).sum())}
    missing = dict.fromkeys(("shift", "log_odds", "log_odds_se", "risk_slope", "centre"), math.nan)
    if not counts["treated"] or not counts["holdout"] or y.sum() in (0, y.size):
        return {**counts, **missing}
    centre = float(offset[treated == 1].mean())
    design = np.column_stack([np.ones_like(treated), treated, treated * (offset - centre)])
    precision = np.array([0.0, 0.0, SLOPE_PRIOR_SD**-2])  # the prior on the slope alone
    weights = np.zeros(3)
    try:
        for _ in range(50):
            p = expit(offset + design @ weights)
            hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(precision)
            step = np.linalg.solve(hessian, design.T @ (y - p) - precision * weights)
            weights += step
            if np.abs(step).max() < 1e-9:
                break
        else:
            return {**counts, **missing}
        p = expit(offset + design @ weights)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(precision)
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return {**counts, **missing}
    if not np.all(np.isfinite(weights)) or abs(weights[1]) > 20:
        return {**counts, **missing}
    return {
        **counts,
        "shift": float(weights[0]),
        "log_odds": float(weights[1]),
        "log_odds_se": float(math.sqrt(covariance[1, 1])),
        "risk_slope": float(weights[2]),
        "centre": centre,
    }


def shown(uplift: np.ndarray, se: np.ndarray, rate: float = FDR) -> np.ndarray:
    """Which estimates are above zero at false discovery rate ``rate``: Benjamini–Hochberg on
    the one-sided p-values (NaN estimates are never shown, nor counted as tests)."""
    tested = np.isfinite(uplift) & np.isfinite(se) & (se > 0)
    p = np.ones(uplift.size)
    p[tested] = norm.sf(uplift[tested] / se[tested])
    m = int(tested.sum())
    if not m:
        return np.zeros(uplift.size, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= rate * np.arange(1, uplift.size + 1) / m
    passed &= tested[order]
    last = int(np.flatnonzero(passed)[-1]) + 1 if passed.any() else 0
    out = np.zeros(uplift.size, dtype=bool)
    out[order[:last]] = True
    return out & tested


def _shrink(found: list[dict[str, Any]]) -> float | None:
    """Shrink each measured segment toward the random-effects mean of its intervention (in
    place: ``_uplift``, ``_uplift_se``); returns the between-segment variance (None when fewer
    than two segments were measured)."""
    usable = [s for s in found if s["measured"].measured and s["measured"].se > 0]
    for s in found:
        s["_uplift"], s["_uplift_se"] = math.nan, math.nan
    if not usable:
        return None
    d = np.array([s["measured"].saving for s in usable])
    v = np.array([s["measured"].se ** 2 for s in usable])
    if len(usable) == 1:
        usable[0]["_uplift"], usable[0]["_uplift_se"] = float(d[0]), float(math.sqrt(v[0]))
        return None
    w = 1 / v
    mean_fixed = (w * d).sum() / w.sum()
    q = (w * (d - mean_fixed) ** 2).sum()
    tau = max(0.0, (q - (len(d) - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    w_random = 1 / (v + tau)
    mean = (w_random * d).sum() / w_random.sum()
    mean_var = 1 / w_random.sum()
    weight = tau / (tau + v)  # how much of its own estimate a segment keeps
    shrunk = mean + weight * (d - mean)
    variance = weight * v + (1 - weight) ** 2 * mean_var
    for s, u, var in zip(usable, shrunk, variance, strict=True):
        s["_uplift"], s["_uplift_se"] = float(u), float(math.sqrt(var))
    return float(tau)


def best_pick(benefit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's option of largest ``benefit`` (rows × options; -inf where it may not be
    taken), -1 where none is positive, and that benefit (0 for none)."""
    if benefit.shape[1] == 0:
        return np.full(benefit.shape[0], -1), np.zeros(benefit.shape[0])
    pick = benefit.argmax(axis=1)
    best = benefit[np.arange(benefit.shape[0]), pick]
    pick = np.where(best > 0, pick, -1)
    return pick, np.where(pick >= 0, best, 0.0)


@dataclass(frozen=True)
class Comparison:
    """One policy against another on the same decisions: value per decision, its 95 % interval
    and its one-sided 95 % lower bound (what "better" is decided on: a one-sided question)."""

    per_decision: float
    low: float
    high: float
    decisions: int
    bound: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "per_decision": _finite(self.per_decision),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "bound": _finite(self.bound),
            "decisions": self.decisions,
            "total": _finite(self.per_decision * self.decisions),
        }


def doubly_robust(
    pick: np.ndarray,
    action: np.ndarray,
    propensity: np.ndarray,
    churned: np.ndarray,
    value: np.ndarray,
    cost: np.ndarray,
    probability: np.ndarray,
    uplift: np.ndarray,
) -> np.ndarray:
    """Per-decision doubly robust value of a policy that picks ``pick`` (-1: no contact), from
    decisions that took ``action`` with chance ``propensity``."""
    rows = np.arange(pick.size)
    gain = np.nan_to_num(uplift, nan=0.0)

    def model(choice: np.ndarray) -> np.ndarray:
        lift = np.where(choice >= 0, gain[rows, np.maximum(choice, 0)], 0.0)
        spent = np.where(choice >= 0, cost[np.maximum(choice, 0)], 0.0)
        return -value * (probability - lift) - spent

    spent = np.where(action >= 0, cost[np.maximum(action, 0)], 0.0)
    reward = -churned * value - spent
    matched = (pick == action) / propensity
    return model(pick) + matched * (reward - model(action))


def compare(first: np.ndarray, second: np.ndarray) -> Comparison:
    """``first`` minus ``second`` (per-decision values on the same rows), with its interval."""
    difference = first - second
    n = difference.size
    mean = float(difference.mean()) if n else math.nan
    se = float(difference.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Comparison(mean, mean - Z95 * se, mean + Z95 * se, n, mean - ONE_SIDED_95 * se)


def qini(score: np.ndarray, churned: np.ndarray, treated: np.ndarray) -> pd.DataFrame:
    """The Qini curve of a ranking: after targeting the top ``targeted`` decisions (by
    ``score``, highest first), the churners saved, ``holdout churners × treated / holdout −
    treated churners`` among them (0 until a holdout row is reached)."""
    order = np.argsort(-np.asarray(score, float), kind="stable")
    y = np.asarray(churned, float)[order]
    t = np.asarray(treated, bool)[order]
    n_t, n_h = np.cumsum(t), np.cumsum(~t)
    c_t, c_h = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(invalid="ignore", divide="ignore"):
        saved = np.where(n_h > 0, c_h * n_t / np.maximum(n_h, 1) - c_t, 0.0)
    return pd.DataFrame(
        {"targeted": np.arange(0, y.size + 1), "saved": np.concatenate([[0.0], saved])}
    )


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, (bool, np.bool_)):
                clean[k] = bool(v)
            elif isinstance(v, (int, np.integer)):
                clean[k] = int(v)
            elif isinstance(v, (float, np.floating)):
                clean[k] = _finite(float(v))
            else:
                clean[k] = None if v is None or v is pd.NA else str(v)
        out.append(clean)
    return out


def _strings(value: Any, source: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {key} must be a list of names")
    return value


def _numbers(value: Any, source: str, key: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise ConfigError(f"{source}: {key} must be a list of numbers")
    return [float(v) for v in value]


def _frame(value: Any, columns: tuple[str, ...], source: str, key: str) -> pd.DataFrame:
    """A list of records with exactly ``columns``: the intervention a name, ``problem`` and
    ``shown`` flags, every other field a finite number or null."""
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ConfigError(f"{source}: {key} must be a list of records")
    for i, record in enumerate(value):
        if set(record) != set(columns):
            raise ConfigError(f"{source}: {key}[{i}] must have the keys {', '.join(columns)}")
        for k, v in record.items():
            if k == "intervention":
                ok = isinstance(v, str)
            elif k in _FLAGS:
                ok = isinstance(v, bool)
            else:
                ok = v is None or (
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                )
            if not ok:
                raise ConfigError(f"{source}: {key}[{i}].{k} is not a name, flag or number")
    frame = pd.DataFrame(value, columns=list(columns))
    for k in columns:
        if k != "intervention" and k not in _FLAGS:
            frame[k] = frame[k].astype(float)
    for k in _FLAGS & set(columns):
        frame[k] = frame[k].astype(bool)
    if "band" in frame:
        frame["band"] = frame["band"].astype(int)
    return frame


_FLAGS = {"problem", "shown"}


def check(
    rows: pd.DataFrame,
    action: np.ndarray,
    uplift: np.ndarray,
    learned: np.ndarray,
    current: np.ndarray,
    cost: np.ndarray,
) -> dict[str, Any]:
    """The learned policy's picks against today's and against contacting no one, on decisions
    (``churned``, ``propensity``, ``churn_probability``, ``customer_value``, ``as_of``) that
    took ``action`` (-1: held out); ``promote`` when both one-sided 95 % lower bounds are
    above zero (requiring both keeps the chance of promoting a policy that is not better than
    either within 5 %: an intersection-union test)."""
    args = (
        action,
        rows["propensity"].to_numpy(float),
        rows["churned"].to_numpy(float),
        rows["customer_value"].to_numpy(float),
        cost,
        rows["churn_probability"].to_numpy(float),
        uplift,
    )
    none = np.full(len(rows), -1)
    terms = {
        name: doubly_robust(pick, *args)
        for name, pick in (("learned", learned), ("current", current), ("none", none))
    }
    learned_vs_current = compare(terms["learned"], terms["current"])
    learned_vs_none = compare(terms["learned"], terms["none"])
    return {
        "decisions": len(rows),
        "dates": [str(pd.Timestamp(d).date()) for d in sorted(rows["as_of"].unique())],
        "contacted": {"learned": int((learned >= 0).sum()), "current": int((current >= 0).sum())},
        "learned_vs_current": learned_vs_current.to_dict(),
        "learned_vs_none": learned_vs_none.to_dict(),
        "current_vs_none": compare(terms["current"], terms["none"]).to_dict(),
        "promote": bool(learned_vs_current.bound > 0 and learned_vs_none.bound > 0),
    }
