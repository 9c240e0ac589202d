"""Choosing and cutting interventions: which customers the list holds, with what.

Each intervention of the catalogue is worth ``p × value × success_rate − cost`` for a customer
it fits: the customer has the ``problem`` it addresses now (or, for an intervention naming
none, one of its ``answers`` matches a reason, a top TreeSHAP driver) and its ``when``
conditions hold. Each customer gets the intervention worth most; the list ranks customers by
that benefit and is cut at ``[score] top_n`` rows and ``[score] budget`` total cost. With a
budget, ``[score] allocation = "knapsack"`` (the default) chooses customers and interventions
together for the most benefit the budget buys (:func:`allocate`).

Reasons (TreeSHAP) are the expensive part, so customers are explained in order of their best
case, the benefit of the most effective intervention ignoring reasons, which bounds every
benefit a customer can get; :func:`build_list` stops once the list can no longer change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

from churnguard.config import CONDITION, InterventionConfig, PipelineConfig, ReasonsConfig
from churnguard.errors import ConfigError
from churnguard.features import FeatureSpec
from churnguard.model import ChurnModel
from churnguard.policy import Effects
from churnguard.reasons import TOP, describe, drivers_of, sentence

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
    "effect_source",
    "as_of",
    "first_listed",
    "new",
    "answers",
)
#: What the run adds to a chosen list: the date and the customer's streak on the lists.
RUN_COLUMNS = ("as_of", "first_listed", "new")
#: The columns :func:`choose` gives, the run's own left out.
CHOSEN_COLUMNS = tuple(c for c in LIST_COLUMNS if c not in RUN_COLUMNS)
#: Column of a candidate frame holding each customer's best case.
BEST_CASE = "_best_case"


def best_cases(
    context: pd.DataFrame,
    catalogue: tuple[InterventionConfig, ...],
    effects: Effects | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected benefit of every intervention for every row of ``context`` (features,
    ``churn_probability`` and ``customer_value``), and each row's best case.

    Assumed effects: ``p × value × success − cost``, the best case ignoring reasons (a bound
    on what the row can get). Learned effects: ``uplift × value − cost`` where the uplift is
    shown and the ``when`` rules hold (-inf elsewhere), exact.
    """
    value = context["customer_value"].to_numpy(float)
    cost = np.array([i.cost for i in catalogue])
    if effects is None:
        p = context["churn_probability"].to_numpy(float)
        success = np.array([i.success_rate for i in catalogue])
        benefit = p[:, None] * value[:, None] * success[None, :] - cost[None, :]
    else:
        names = [i.name for i in catalogue]
        p = context["churn_probability"].to_numpy(float)
        uplift, shown = effects.lookup(names, problems(context, catalogue), p)
        benefit = uplift * value[:, None] - cost[None, :]
        benefit = np.where(shown & allowed(context, catalogue), benefit, -np.inf)
    if benefit.shape[1] == 0:
        return benefit, np.full(len(context), -np.inf)
    return benefit, benefit.max(axis=1)


def priced(
    frame: pd.DataFrame,
    probability: np.ndarray,
    value: np.ndarray,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    rules: ReasonsConfig,
) -> pd.DataFrame:
    """Each row's intervention as the nightly list chooses it under the catalogue's assumed
    success rates, every row explained, so that a report prices lists as the night does:
    ``expected_benefit`` (-inf where none fits), its ``cost``, and ``saving``, the value it
    keeps of a customer who would churn (success rate × value; 0 where none fits)."""
    context = frame.assign(churn_probability=probability, customer_value=value)
    benefit, _ = best_cases(context, catalogue)
    net = _net(context, drivers_of(model, frame, rules), benefit, model, catalogue, None)
    if not net.shape[1]:
        net = np.full((len(frame), 1), -np.inf)
    pick = net.argmax(axis=1)
    gain = net[np.arange(len(frame)), pick]
    fits = np.isfinite(gain)
    cost = np.array([i.cost for i in catalogue] or [0.0])
    success = np.array([i.success_rate for i in catalogue] or [0.0])
    return pd.DataFrame(
        {
            "expected_benefit": gain,
            "cost": np.where(fits, cost[pick], 0.0),
            "saving": np.where(fits, success[pick] * np.asarray(value, dtype=float), 0.0),
        }
    )


def choose(
    frame: pd.DataFrame,
    scores: pd.DataFrame,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    config: PipelineConfig,
    *,
    as_of: dt.date,
    beyond: float = -np.inf,
    effects: Effects | None = None,
    features_of: Callable[[np.ndarray], pd.DataFrame] | None = None,
) -> pd.DataFrame | None:
    """Choose, rank and cut: the ``interventions.csv`` rows, under the catalogue's assumed
    success rates or, given ``effects``, learned uplift (which then alone decides who fits).

    Per-customer contributions (TreeSHAP) are the expensive part. Ranked, customers are taken
    in order of their best case, in growing batches, until the list is settled: ``top_n`` or
    ``budget`` rows whose chosen benefit beats every remaining best case (without a limit every
    customer with a positive best case is explained). With a knapsack, only the customers it
    picks are explained (:func:`_knapsack_choice`).

    ``frame`` and ``scores`` may hold only the head of the candidates (in best-case order, a
    whole number of batches) when every other customer's best case is at most ``beyond``; then
    None means the head cannot settle the list and a longer one is needed. Given
    ``features_of`` (customer ids to their features, in that order), ``frame`` need hold only
    the columns of :func:`condition_columns`: the features are read for the customers
    explained alone, so a knapsack over a million candidates holds a few columns of each.
    """
    ids = scores["customer_id"].to_numpy()
    read: pd.DataFrame | None = None  # features read through features_of, by row of scores

    def features(rows: np.ndarray) -> pd.DataFrame:
        # the customers a knapsack explains are also those it lists: each is read once
        nonlocal read
        if features_of is None:
            return frame.iloc[rows]
        new = rows if read is None else np.setdiff1d(rows, read.index)
        if new.size or read is None:
            found = features_of(ids[new]).set_axis(new)
            read = found if read is None else pd.concat([read, found])
        return read.loc[rows].reset_index(drop=True)

    p = scores["churn_probability"].to_numpy()
    value = scores["customer_value"].to_numpy()
    cost = np.array([i.cost for i in catalogue])
    context = frame.assign(churn_probability=p, customer_value=value)
    benefit, best_case = best_cases(context, catalogue, effects)
    order = np.lexsort((ids, -best_case))
    order = order[best_case[order] > 0]
    if _knapsack(config):
        pick, gain, drivers = _knapsack_choice(
            lambda rows: features(order[rows]),
            context.iloc[order],
            benefit[order],
            ids[order],
            model,
            catalogue,
            config,
            effects,
        )
        rows = order
    else:
        need = rows_needed(config, cost)
        rows, pick, gain, drivers = _ranked_choice(
            features,
            context,
            benefit,
            best_case,
            order,
            need,
            model,
            catalogue,
            effects,
            config.reasons,
        )
        if beyond > 0 and (not need or (_cents(gain) > _cents(beyond)).sum() < need):
            return None
    if not rows.size:
        return pd.DataFrame(columns=list(CHOSEN_COLUMNS))
    gain = _cents(gain)  # as written: a benefit that rounds to 0.00 is not listed
    keep = (gain > 0) & (pick >= 0)
    rows, pick, gain, drivers = rows[keep], pick[keep], gain[keep], drivers[keep]
    ranked = np.lexsort((ids[rows], -gain))
    if config.score.top_n:
        ranked = ranked[: config.score.top_n]
    if config.score.budget and not _knapsack(config):
        ranked = ranked[np.cumsum(cost[pick[ranked]]) <= config.score.budget]
    rows, pick, gain, drivers = rows[ranked], pick[ranked], gain[ranked], drivers[ranked]
    sentences = [
        s + [""] * (TOP - len(s)) for s in describe(model.features, features(rows), drivers, as_of)
    ]
    listed = scores.iloc[rows].reset_index(drop=True)
    listed.insert(0, "rank", np.arange(1, rows.size + 1))
    return listed.assign(
        **{f"reason_{n + 1}": [s[n] for s in sentences] for n in range(TOP)},
        intervention=[catalogue[k].name for k in pick],
        intervention_cost=cost[pick],
        expected_benefit=gain,
        effect_source="assumed" if effects is None else "learned",
        answers=addressed(
            [catalogue[k] for k in pick],
            context.iloc[rows],
            drivers,
            model.features,
            sentences,
            as_of,
        ),
    )[list(CHOSEN_COLUMNS)]


def addressed(
    chosen: list[InterventionConfig],
    values: pd.DataFrame,
    drivers: np.ndarray,
    features: list[FeatureSpec],
    sentences: list[list[str]],
    as_of: dt.date,
) -> list[str]:
    """What each row's intervention answers, in words: the first of its ``problem``
    conditions the customer meets (the feature's value as a reason reads it), or, for an
    intervention naming no problem, the first of the customer's reasons it answers."""
    specs = {s.name: s for s in features}
    conditions = {c for i in chosen for c in i.problem}
    met_by = {c: holds(c, values) for c in conditions}  # each condition over every row at once
    out = []
    for row, intervention in enumerate(chosen):
        text = ""
        if intervention.problem:
            met = next((c for c in intervention.problem if met_by[c][row]), "")
            name = met and _column(met)
            text = sentence(specs[name], values[name].iloc[row], as_of) if name in specs else met
        else:
            for slot, j in enumerate(j for j in drivers[row] if j >= 0):
                if _answers(intervention, features[j].name):
                    text = sentences[row][slot]
                    break
        out.append(text)
    return out


def _ranked_choice(
    features: Callable[[np.ndarray], pd.DataFrame],
    context: pd.DataFrame,
    benefit: np.ndarray,
    best_case: np.ndarray,
    order: np.ndarray,
    need: int,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    effects: Effects | None,
    rules: ReasonsConfig,
) -> tuple[np.ndarray, ...]:
    """Each customer's best fitting intervention, explaining customers in best-case order in
    growing batches until ``need`` rows beat every remaining best case (all without a need).
    Returns the rows explained, their pick, gain and reasons."""
    done, chosen_parts, gain_parts, driver_parts = [], [], [], []
    start, batch = 0, first_batch(need) or order.size
    while start < order.size:
        rows = order[start : start + batch]
        start += rows.size
        batch *= 2
        drivers = drivers_of(model, features(rows), rules)
        net = _net(context.iloc[rows], drivers, benefit[rows], model, catalogue, effects)
        pick = net.argmax(axis=1)
        done.append(rows)
        chosen_parts.append(pick)
        gain_parts.append(net[np.arange(rows.size), pick])
        driver_parts.append(drivers)
        if need and start < order.size:
            settled = (_cents(np.concatenate(gain_parts)) > _cents(best_case[order[start]])).sum()
            if settled >= need:
                break
    if not done:
        empty = np.zeros(0, dtype=int)
        return empty, empty, np.zeros(0), np.zeros((0, TOP), dtype=int)
    rows, pick = np.concatenate(done), np.concatenate(chosen_parts)
    return rows, pick, np.concatenate(gain_parts), np.concatenate(driver_parts)


def _knapsack_choice(
    features: Callable[[np.ndarray], pd.DataFrame],
    context: pd.DataFrame,
    benefit: np.ndarray,
    ids: np.ndarray,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    config: PipelineConfig,
    effects: Effects | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The knapsack over every candidate, explaining (TreeSHAP) only the customers it picks.

    An intervention's ``problem`` and ``when`` conditions need no reasons; one that fits by the
    reasons it ``answers`` is taken to fit until the customer is explained. The allocation is
    run, the customers it picks that are not yet explained are explained (which may rule such
    an intervention out), and it is run again, until it picks only explained customers.
    """
    n = len(ids)
    known = _net(context, None, benefit, model, catalogue, effects)
    drivers = np.full((n, TOP), -1)
    explained = np.zeros(n, dtype=bool)
    while True:
        pick, gain = allocate(
            known, np.array([i.cost for i in catalogue]), config.score.budget, ids
        )
        todo = np.flatnonzero((pick >= 0) & ~explained)
        if not todo.size:
            return pick, gain, drivers
        found = drivers_of(model, features(todo), config.reasons)
        drivers[todo], explained[todo] = found, True
        known[todo] = _net(context.iloc[todo], found, benefit[todo], model, catalogue, effects)


def _net(
    context: pd.DataFrame,
    drivers: np.ndarray | None,
    benefit: np.ndarray,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    effects: Effects | None,
) -> np.ndarray:
    """``benefit`` where the intervention fits, -inf elsewhere. Learned effects already hold
    who fits; without ``drivers`` (not yet explained) an intervention that fits by its reasons
    is taken to fit."""
    if effects is not None:
        return benefit
    fits = fitting(context, drivers, model, catalogue)
    return np.where(fits, benefit, -np.inf)


def build_list(
    candidates: Callable[[int], pd.DataFrame],
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
    config: PipelineConfig,
    effects: Effects | None = None,
    *,
    as_of: dt.date,
    features_of: Callable[[np.ndarray], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The list from the head of the candidates, grown until it settles, reasons dated from
    ``as_of``.

    ``candidates(n)`` returns the ``n`` customers with the highest best case (0: all with a
    positive one), in that order (ties by customer_id), with their features, scores and
    :data:`BEST_CASE`. Without a ``top_n`` or ``budget`` every candidate is read at once;
    otherwise a head a few times the longest possible list is read, and doubled while
    customers beyond it could still make the list. With ``features_of``, every candidate at
    once (``candidates(0)``) need hold only :func:`condition_columns` beside the scores (see
    :func:`choose`).
    """
    need = rows_needed(config, np.array([i.cost for i in catalogue]))
    size = first_batch(need)
    while True:
        head = candidates(size + 1 if need else 0)
        beyond = head[BEST_CASE].iloc[size] if need and len(head) > size else -np.inf
        head = head.iloc[:size] if need else head
        listed = choose(
            head,
            head,
            model,
            catalogue,
            config,
            as_of=as_of,
            beyond=beyond,
            effects=effects,
            features_of=None if need else features_of,
        )
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


def allocate(
    net: np.ndarray, cost: np.ndarray, budget: float, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One intervention per row (-1: none) for the most total ``net`` benefit within
    ``budget``: the multiple-choice knapsack, solved by its Lagrangian relaxation.

    At a price ``λ`` on money each row takes its option of largest ``net − λ × cost``, if
    positive; the smallest ``λ`` whose choices fit the budget is found by bisection, and the
    money left is spent on the rows left out, best benefit per unit cost first (ties by
    ``ids``); if taking each row's best option in order of benefit does better, that is kept
    instead. Example: with 40 to spend, two customers worth 30 for 20 each beat one worth 50
    for 40, which ranking by benefit would take.
    """
    n = net.shape[0]
    rows = np.arange(n)
    free = np.where(np.isfinite(net), net, -np.inf)

    def choices(price: float) -> np.ndarray:
        adjusted = free - price * cost[None, :]
        pick = adjusted.argmax(axis=1) if n else np.zeros(0, dtype=int)
        return np.where(adjusted[rows, pick] > 0, pick, -1)

    def spent(pick: np.ndarray) -> float:
        return float(cost[pick[pick >= 0]].sum())

    pick = choices(0.0)
    if spent(pick) > budget:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((cost > 0) & (free > 0), free / cost, 0.0)
        low, high = 0.0, float(ratio.max()) + 1.0
        for _ in range(60):
            middle = (low + high) / 2
            if spent(choices(middle)) <= budget:
                high = middle
            else:
                low = middle
        pick = choices(high)
        left = budget - spent(pick)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_cost = np.where(cost > 0, free / cost, np.inf)
        best = per_cost.argmax(axis=1) if n else np.zeros(0, dtype=int)
        waiting = np.flatnonzero((pick < 0) & (free[rows, best] > 0))
        for i in waiting[np.lexsort((ids[waiting], -per_cost[waiting, best[waiting]]))]:
            if cost[best[i]] <= left:
                pick[i], left = best[i], left - cost[best[i]]
        pick = _better(pick, _ranked(free, cost, budget, ids), free)
    gain = np.where(pick >= 0, free[rows, np.maximum(pick, 0)], 0.0)
    return pick, gain


def _ranked(net: np.ndarray, cost: np.ndarray, budget: float, ids: np.ndarray) -> np.ndarray:
    """Each row's best option, taken in order of benefit while the money lasts."""
    best = net.argmax(axis=1)
    gain = net[np.arange(net.shape[0]), best]
    order = np.lexsort((ids, -gain))
    order = order[gain[order] > 0]
    order = order[np.cumsum(cost[best[order]]) <= budget]
    pick = np.full(net.shape[0], -1)
    pick[order] = best[order]
    return pick


def _better(first: np.ndarray, second: np.ndarray, net: np.ndarray) -> np.ndarray:
    """The allocation with more total benefit (the relaxation can lose to plain ranking when
    one dear option crowds out the rest; taking the better keeps knapsack at least as good)."""
    rows = np.arange(net.shape[0])

    def total(pick: np.ndarray) -> float:
        return float(net[rows[pick >= 0], pick[pick >= 0]].sum())

    return second if total(second) > total(first) else first


def _knapsack(config: PipelineConfig) -> bool:
    return bool(config.score.budget) and config.score.allocation == "knapsack"


def rows_needed(config: PipelineConfig, cost: np.ndarray) -> int:
    """The most rows the cut can keep (0: no limit). A knapsack may take any customer with a
    positive best case, so it reads them all."""
    if _knapsack(config):
        return 0
    limits = []
    if config.score.top_n:
        limits.append(config.score.top_n)
    if config.score.budget and cost.min() > 0:
        limits.append(int(config.score.budget // cost.min()) + 1)
    return min(limits) if limits else 0


def _answers(intervention: InterventionConfig, feature: str) -> bool:
    """Whether the intervention answers a reason given by ``feature``."""
    return "*" in intervention.answers or any(part in feature for part in intervention.answers)


def condition_columns(catalogue: tuple[InterventionConfig, ...]) -> list[str]:
    """The columns the catalogue's ``problem`` and ``when`` conditions read: with the scores,
    all that choosing needs of a customer not yet explained."""
    return sorted({_column(c) for i in catalogue for c in (*i.problem, *i.when)})


def _column(condition: str) -> str:
    return CONDITION.fullmatch(condition).group(1)  # type: ignore[union-attr]


def check_conditions(catalogue: tuple[InterventionConfig, ...], model: ChurnModel) -> None:
    """Refuse a condition of a config's own catalogue on a name that is neither a feature of
    ``model`` nor ``customer_value``/``churn_probability``: a typo would silently switch its
    intervention off. (The packaged catalogue is written for every dataset, so a condition of
    it on a feature this data lacks simply never holds.)"""
    known = {s.name for s in model.features} | {"customer_value", "churn_probability"}
    for intervention in catalogue:
        for condition in (*intervention.problem, *intervention.when):
            name = _column(condition)
            if name not in known:
                raise ConfigError(
                    f"interventions {intervention.name!r}: condition {condition!r} is on "
                    f"{name!r}, which is not a feature of the model, customer_value or "
                    "churn_probability; correct the name, or drop the condition"
                )


def fitting(
    context: pd.DataFrame,
    drivers: np.ndarray | None,
    model: ChurnModel,
    catalogue: tuple[InterventionConfig, ...],
) -> np.ndarray:
    """Rows × interventions: which interventions fit each row of ``context`` (features,
    ``churn_probability`` and ``customer_value``), given its reasons ``drivers`` (None: not
    known yet, and an intervention that fits by its reasons is taken to fit)."""
    answers = np.array([[_answers(i, s.name) for s in model.features] for i in catalogue])
    columns = [_fits(i, answers[k], drivers, context) for k, i in enumerate(catalogue)]
    return np.column_stack(columns) if columns else np.zeros((len(context), 0), dtype=bool)


def allowed(context: pd.DataFrame, catalogue: tuple[InterventionConfig, ...]) -> np.ndarray:
    """Rows × interventions: where every ``when`` condition holds (the business's rules, which
    learned effects keep too)."""
    rules = np.ones((len(context), len(catalogue)), dtype=bool)
    for k, intervention in enumerate(catalogue):
        for condition in intervention.when:
            rules[:, k] &= holds(condition, context)
    return rules


def problems(context: pd.DataFrame, catalogue: tuple[InterventionConfig, ...]) -> np.ndarray:
    """Rows × interventions: who has the problem each intervention addresses."""
    flags = [has_problem(i, context) for i in catalogue]
    return np.column_stack(flags) if flags else np.zeros((len(context), 0), dtype=bool)


def _fits(
    intervention: InterventionConfig,
    answers: np.ndarray,
    drivers: np.ndarray | None,
    context: pd.DataFrame,
) -> np.ndarray:
    """Rows with the problem the intervention addresses (or, when it names none, a reason it
    answers) whose values meet its conditions.

    ``answers[j]`` says whether it answers feature ``j``; ``drivers`` holds each row's reason
    feature indices (-1 = none), or is None when they are not known yet.
    """
    if intervention.problem:
        fits = has_problem(intervention, context)
    elif drivers is None:
        fits = np.ones(len(context), dtype=bool)
    else:
        fits = (answers[np.maximum(drivers, 0)] & (drivers >= 0)).any(axis=1)
    for condition in intervention.when:
        fits &= holds(condition, context)
    return fits


def has_problem(intervention: InterventionConfig, context: pd.DataFrame) -> np.ndarray:
    """Rows where one of the intervention's problem conditions holds (all rows when it names
    no problem)."""
    if not intervention.problem:
        return np.ones(len(context), dtype=bool)
    found = np.zeros(len(context), dtype=bool)
    for condition in intervention.problem:
        found |= holds(condition, context)
    return found


def holds(condition: str, context: pd.DataFrame) -> np.ndarray:
    """Rows meeting ``name op number``; never on a missing value or a column the data lacks."""
    name, op, number = CONDITION.fullmatch(condition).groups()  # type: ignore[union-attr]
    if name not in context:
        return np.zeros(len(context), dtype=bool)
    values = pd.to_numeric(context[name], errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        return _OPS[op](values, float(number)) & ~np.isnan(values)


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
