"""Choosing and cutting interventions: which customers the list holds, with what.

Each intervention of the catalogue is worth ``p × value × success_rate − cost`` for a customer
it fits: one of its ``answers`` matches a reason (a top TreeSHAP driver) and its ``when``
conditions hold. Each customer gets the intervention worth most; the list ranks customers by
that benefit and is cut at ``[score] top_n`` rows and ``[score] budget`` total cost.

Reasons (TreeSHAP) are the expensive part, so customers are explained in order of their best
case, the benefit of the most effective intervention ignoring reasons, which bounds every
benefit a customer can get; :func:`build_list` stops once the list can no longer change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churnguard.config import CONDITION, InterventionConfig, PipelineConfig
from churnguard.errors import ConfigError
from churnguard.model import ChurnModel
from churnguard.reasons import TOP, describe, top_drivers

LIST_COLUMNS = (
    "rank",
    "customer_id",
    "churn_probability",
    "risk_tier",
    "customer_value",
    "value_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "intervention",
    "intervention_cost",
    "expected_benefit",
)
#: Column of a candidate frame holding each customer's best case.
BEST_CASE = "_best_case"


def best_cases(
    scores: pd.DataFrame, catalogue: tuple[InterventionConfig, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Expected benefit of every intervention for every row, and each row's best case (the most
    effective intervention, ignoring reasons): p × value × success − cost."""
    p = scores["churn_probability"].to_numpy(float)
    value = scores["customer_value"].to_numpy(float)
    success = np.array([i.success_rate for i in catalogue])
    cost = np.array([i.cost for i in catalogue])
    benefit = p[:, None] * value[:, None] * success[None, :] - cost[None, :]
    return benefit, benefit.max(axis=1)


def choose(
    frame: pd.DataFrame,
    scores: pd.DataFrame,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    config: PipelineConfig,
    *,
    beyond: float = -np.inf,
) -> pd.DataFrame | None:
    """Choose, rank and cut: the ``interventions.csv`` rows.

    Per-customer contributions (TreeSHAP) are the expensive part, so customers are taken in
    order of their best case, in growing batches, until the list is settled: ``top_n`` or
    ``budget`` rows whose chosen benefit beats every remaining best case. Without a limit every
    customer with a positive best case is explained.

    ``frame`` and ``scores`` may hold only the head of the candidates (in best-case order, a
    whole number of batches) when every other customer's best case is at most ``beyond``; then
    None means the head cannot settle the list and a longer one is needed.
    """
    p = scores["churn_probability"].to_numpy()
    value = scores["customer_value"].to_numpy()
    cost = np.array([i.cost for i in catalogue])
    benefit, best_case = best_cases(scores, catalogue)
    order = np.lexsort((scores["customer_id"].to_numpy(), -best_case))
    order = order[best_case[order] > 0]
    answers = np.array([[_answers(i, s.name) for s in model.features] for i in catalogue])
    need = rows_needed(config, cost)
    done: list[np.ndarray] = []
    chosen_parts, gain_parts, driver_parts = [], [], []
    start, batch = 0, first_batch(need) or order.size
    while start < order.size:
        rows = order[start : start + batch]
        start += rows.size
        batch *= 2
        drivers = top_drivers(model.contributions(frame.iloc[rows]))
        context = frame.iloc[rows].assign(churn_probability=p[rows], customer_value=value[rows])
        eligible = np.column_stack(
            [
                _fits(intervention, answers[k], drivers, context)
                for k, intervention in enumerate(catalogue)
            ]
        )
        net = np.where(eligible, benefit[rows], -np.inf)
        pick = net.argmax(axis=1)
        done.append(rows)
        chosen_parts.append(pick)
        gain_parts.append(net[np.arange(rows.size), pick])
        driver_parts.append(drivers)
        if need and start < order.size:
            settled = (_cents(np.concatenate(gain_parts)) > _cents(best_case[order[start]])).sum()
            if settled >= need:
                break
    gains = np.concatenate(gain_parts) if gain_parts else np.empty(0)
    if beyond > 0 and (not need or (_cents(gains) > _cents(beyond)).sum() < need):
        return None
    if not done:
        return pd.DataFrame(columns=list(LIST_COLUMNS))
    rows, pick = np.concatenate(done), np.concatenate(chosen_parts)
    gain, drivers = np.concatenate(gain_parts), np.concatenate(driver_parts)
    gain = _cents(gain)  # as written: a benefit that rounds to 0.00 is not listed
    keep = gain > 0
    rows, pick, gain, drivers = rows[keep], pick[keep], gain[keep], drivers[keep]
    ranked = np.lexsort((scores["customer_id"].to_numpy()[rows], -gain))
    if config.score.top_n:
        ranked = ranked[: config.score.top_n]
    if config.score.budget:
        ranked = ranked[np.cumsum(cost[pick[ranked]]) <= config.score.budget]
    rows, pick, gain, drivers = rows[ranked], pick[ranked], gain[ranked], drivers[ranked]
    sentences = [
        s + [""] * (TOP - len(s)) for s in describe(model.features, frame.iloc[rows], drivers)
    ]
    listed = scores.iloc[rows].reset_index(drop=True)
    listed.insert(0, "rank", np.arange(1, rows.size + 1))
    return listed.assign(
        **{f"reason_{n + 1}": [s[n] for s in sentences] for n in range(TOP)},
        intervention=[catalogue[k].name for k in pick],
        intervention_cost=cost[pick],
        expected_benefit=gain,
    )[list(LIST_COLUMNS)]


def build_list(
    candidates: Callable[[int], pd.DataFrame],
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    config: PipelineConfig,
) -> pd.DataFrame:
    """The list from the head of the candidates, grown until it settles.

    ``candidates(n)`` returns the ``n`` customers with the highest best case (0: all with a
    positive one), in that order (ties by customer_id), with their features, scores and
    :data:`BEST_CASE`. Without a ``top_n`` or ``budget`` every candidate is read at once;
    otherwise a head a few times the longest possible list is read, and doubled while
    customers beyond it could still make the list.
    """
    need = rows_needed(config, np.array([i.cost for i in catalogue]))
    size = first_batch(need)
    while True:
        head = candidates(size + 1 if need else 0)
        beyond = head[BEST_CASE].iloc[size] if need and len(head) > size else -np.inf
        head = head.iloc[:size] if need else head
        listed = choose(head, head, model, catalogue, config, beyond=beyond)
        if listed is not None:
            return listed
        size = 2 * size + first_batch(need)


def _cents(money: np.ndarray | float) -> np.ndarray:
    """Amounts as the list writes and ranks them. Whether a customer is settled is decided on
    these too: customers a cent apart before rounding may tie after it, and a tie is broken
    by customer_id, so an unread customer could otherwise come first."""
    return np.round(money, 2)


def first_batch(need: int) -> int:
    """Rows explained in the first batch (0: all at once); each later batch doubles."""
    return max(256, 4 * need) if need else 0


def rows_needed(config: PipelineConfig, cost: np.ndarray) -> int:
    """The most rows the cut can keep (0: no limit)."""
    limits = []
    if config.score.top_n:
        limits.append(config.score.top_n)
    if config.score.budget and cost.min() > 0:
        limits.append(int(config.score.budget // cost.min()) + 1)
    return min(limits) if limits else 0


def _answers(intervention: InterventionConfig, feature: str) -> bool:
    """Whether the intervention answers a reason given by ``feature``."""
    return "*" in intervention.answers or any(part in feature for part in intervention.answers)


def check_conditions(catalogue: tuple[InterventionConfig, ...], model: ChurnModel) -> None:
    """Refuse a condition of a config's own catalogue on a name that is neither a feature of
    ``model`` nor ``customer_value``/``churn_probability``: a typo would silently switch its
    intervention off. (The packaged catalogue is written for every dataset, so a condition of
    it on a feature this data lacks simply never holds.)"""
    known = {s.name for s in model.features} | {"customer_value", "churn_probability"}
    for intervention in catalogue:
        for condition in intervention.when:
            name = CONDITION.fullmatch(condition).group(1)  # type: ignore[union-attr]
            if name not in known:
                raise ConfigError(
                    f"interventions {intervention.name!r}: condition {condition!r} is on "
                    f"{name!r}, which is not a feature of the model, customer_value or "
                    "churn_probability; correct the name, or drop the condition"
                )


def _fits(
    intervention: InterventionConfig,
    answers: np.ndarray,
    drivers: np.ndarray,
    context: pd.DataFrame,
) -> np.ndarray:
    """Rows with a reason the intervention answers and whose values meet its conditions.

    ``answers[j]`` says whether it answers feature ``j``; ``drivers`` holds each row's reason
    feature indices (-1 = none).
    """
    fits = (answers[np.maximum(drivers, 0)] & (drivers >= 0)).any(axis=1)
    for condition in intervention.when:
        name, op, number = CONDITION.fullmatch(condition).groups()  # type: ignore[union-attr]
        if name not in context:
            return np.zeros(len(context), dtype=bool)  # a condition on data we lack never holds
        values = pd.to_numeric(context[name], errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            fits &= _OPS[op](values, float(number))
    return fits


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
