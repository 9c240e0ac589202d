"""``churnguard uplift``: effects learned from the treatment log, checked before they are used.

:func:`learn_uplift` reads the log that ``churnguard outcomes`` wrote, rebuilds each decision's
features at its own date with the model in service (so the probabilities are the ones scoring
will use), and learns per intervention and problem the change in the odds of churning each
intervention brings, with the plain saving per probability band beside it
(:mod:`churnguard.policy`).

Before the effects may be used, the policy they give is checked on decisions they were not
learned from, by cross-fitting: the decisions are cut into runs of consecutive list dates each
holding about ``[uplift] evaluation_share`` of them (with a single date, customers at random),
and each run is checked with effects learned from all the others, so every decision is
checked and none by effects it taught. The doubly robust value per decision is compared with
today's policy (the catalogue's assumed success rates) and with contacting no one; ``promote``
is true only when both one-sided 95 % lower bounds are above zero. The effects written are
then learned from every decision.

Writes to the out folder: ``effects.json`` (what ``[score] effects = "learned"`` reads),
``effects.csv`` (one row per band segment), ``qini.png`` and ``report.html``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import ibis
import numpy as np
import pandas as pd

from churnguard import charts
from churnguard.assignment import coin
from churnguard.config import (
    InterventionConfig,
    PipelineConfig,
    ReasonsConfig,
    config_from_dict,
    run_catalogue,
)
from churnguard.contract import load_dataset
from churnguard.errors import DataContractError
from churnguard.features import build_features, plan_features
from churnguard.interventions import best_cases, fitting, problems
from churnguard.io import atomic_folder
from churnguard.logs import Stages
from churnguard.measure import read_log
from churnguard.model import ChurnModel
from churnguard.policy import (
    Effects,
    assumed_effects,
    band_cuts,
    best_pick,
    check,
    learn,
    qini,
)
from churnguard.reasons import drivers_of
from churnguard.registry import check_schema, find_model, load_model
from churnguard.report import write_uplift_report
from churnguard.value import values_at

OUT_FILES = ("effects.json", "effects.csv", "qini.png", "report.html")


@dataclass(frozen=True)
class UpliftRun:
    """What :func:`learn_uplift` learned and wrote."""

    out: Path
    effects: Effects
    #: Per intervention, the Qini curve of the learned ranking on the evaluation decisions.
    qini: dict[str, pd.DataFrame]

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.out / name for name in OUT_FILES}


def learn_uplift(
    config: PipelineConfig,
    *,
    log: Path | str,
    out: Path | str,
    model: str | Path | None = None,
) -> UpliftRun:
    """Learn effects from the treatment log ``log`` and write them to the folder ``out``.

    Raises
    ------
    DataContractError
        The log is not a treatment log, names an intervention the catalogue lacks, or has no
        holdout rows (effects cannot be measured).
    """
    log, out = Path(log), Path(out)
    say = Stages()
    say("reading the treatment log and the model")
    decisions = read_log(log)
    say.rows = len(decisions)
    catalogue = run_catalogue(config)
    names = [i.name for i in catalogue]
    unknown = sorted(set(decisions["intervention"]) - set(names))
    if unknown:
        raise DataContractError(
            f"{log}, column 'intervention': {unknown[0]!r} is not in the catalogue "
            f"({', '.join(names)})"
        )
    folder = find_model(model, config.model)
    churn_model, metadata = load_model(folder)
    frame = _decision_features(config, decisions, churn_model, metadata)
    context = frame.drop(columns=["group", "churned", "propensity"])
    problem = problems(context, catalogue)
    k = np.array([names.index(n) for n in frame["intervention"]])
    own_problem = problem[np.arange(len(frame)), k]
    costs = np.array([i.cost for i in catalogue])
    cuts = band_cuts(frame["churn_probability"].to_numpy(float), config.uplift.bands)

    say("learning and checking effects")
    controls = _shared_controls(frame, problem, catalogue)
    assumed = assumed_effects(catalogue) if config.uplift.prior == "catalogue" else None
    # cross-fitting: each block of dates is checked with effects learned from the others
    blocks = _check_blocks(frame, config.uplift.evaluation_share)
    parts = []
    for block in np.unique(blocks):
        out_of = blocks != block
        learning = learn(
            frame[out_of], own_problem[out_of], names, cuts, costs, controls[out_of], assumed
        )
        parts.append(
            _picks(
                frame[~out_of],
                problem[~out_of],
                k[~out_of],
                learning,
                catalogue,
                churn_model,
                config.reasons,
            )
        )
    checked = pd.concat([part[0] for part in parts], ignore_index=True)
    action, uplift, learned, current = (np.concatenate([p[i] for p in parts]) for i in range(1, 5))
    evaluation = check(checked, action, uplift, learned, current, costs)
    curves = {
        name: _qini(checked, uplift[:, j], name)
        for j, name in enumerate(names)
        if (checked["intervention"] == name).any()
    }
    effects = dataclasses.replace(
        learn(frame, own_problem, names, cuts, costs, controls, assumed),
        promote=evaluation["promote"],
        evaluation=evaluation,
        method=config.uplift.method,
    )
    say("writing")
    with atomic_folder(out.resolve()) as staging:
        staging.mkdir()
        (staging / "effects.json").write_text(effects.to_json(), encoding="utf-8")
        effects.segments.to_csv(staging / "effects.csv", index=False, lineterminator="\r\n")
        charts.save_png(charts.qini_chart(curves), staging / "qini.png")
        write_uplift_report(staging / "report.html", effects, curves, log=str(log))
    say.done()
    return UpliftRun(out=out, effects=effects, qini=curves)


def _decision_features(
    config: PipelineConfig, decisions: pd.DataFrame, model: ChurnModel, metadata: dict
) -> pd.DataFrame:
    """Each decision with the model's features at its date, the model's churn probability and
    the customer's value then; decisions about customers without features then drop out."""
    trained = config_from_dict(metadata["config"], source="model metadata")
    dataset = load_dataset(config.data, definition=trained.churn.definition, engine=config.engine)
    plan = plan_features(
        dataset,
        config=trained.features,
        activity_events=trained.churn.activity_events,
        horizon_days=trained.churn.horizon_days,
    )
    check_schema(model, list(plan.specs), where=str(dataset.tables["customers"].path))
    dates = sorted(decisions["as_of"].unique())
    keys = ibis.memtable(
        decisions[["customer_id", "as_of"]].astype({"as_of": "datetime64[us]"}),
        schema={"customer_id": "string", "as_of": "timestamp"},
    )
    features = build_features(
        dataset,
        as_of=[pd.Timestamp(d).to_pydatetime() for d in dates],
        config=trained.features,
        plan=plan,
    )
    names = ["customer_id", "as_of", *[s.name for s in model.features]]
    frame = features.semi_join(keys, ["customer_id", "as_of"]).select(names).to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.tz_localize(None)
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["churn_probability"] = model.churn_probability(frame)
    values = []
    for date, part in frame.groupby("as_of", sort=True):
        worth = values_at(
            dataset,
            part,
            part["churn_probability"].to_numpy(float),
            plan=plan,
            as_of=pd.Timestamp(date).to_pydatetime(),
            horizon_days=trained.churn.horizon_days,
        )
        values.append(pd.Series(worth, index=part.index))
    frame["customer_value"] = pd.concat(values) if values else []
    logged = ["customer_id", "as_of", "intervention", "group", "churned", "propensity"]
    merged = decisions[logged].merge(frame, on=["customer_id", "as_of"], how="inner")
    merged["propensity"] = _filled_propensity(merged)
    return merged.sort_values(["as_of", "customer_id"], kind="stable").reset_index(drop=True)


def _filled_propensity(frame: pd.DataFrame) -> np.ndarray:
    """The log's propensity, or where it has none, the group's share among the decisions of the
    same date and intervention (as if the intervention were chosen for the customer and only
    the holdout drawn at random)."""
    share = frame.groupby(["as_of", "intervention"])["group"].transform(
        lambda g: g.map(g.value_counts(normalize=True))
    )
    own = frame["propensity"].to_numpy(float)
    return np.where(np.isnan(own), share.to_numpy(float), own)


def _shared_controls(
    frame: pd.DataFrame, problem: np.ndarray, catalogue: tuple[InterventionConfig, ...]
) -> np.ndarray:
    """Rows × interventions: holdout decisions that are controls for an intervention besides
    their own.

    On a date whose interventions were drawn at random (some treated decision's chance plus the
    chance of being held out is below one, as in a campaign testing several arms), a customer
    held out under one arm was held out under any other they could have drawn: so a holdout
    with the problem an intervention addresses is a control for it. Interventions meant for
    anyone keep their own holdout (who may draw them differs), and a nightly list, which
    chooses the intervention, keeps every holdout with its own.
    """
    held = (frame["group"] == "holdout").to_numpy()
    chance = frame["propensity"].to_numpy(float)
    dates = frame["as_of"]
    held_chance = pd.Series(np.where(held, chance, np.nan)).groupby(dates.to_numpy()).max()
    lowest = pd.Series(np.where(held, np.nan, chance)).groupby(dates.to_numpy()).min()
    drawn = (lowest + held_chance < 1 - 1e-6).reindex(dates.to_numpy()).fillna(False)
    shared = held & drawn.to_numpy(bool)
    specific = np.array([bool(i.problem) for i in catalogue])
    return shared[:, None] & problem & specific[None, :]


def _check_blocks(frame: pd.DataFrame, share: float) -> np.ndarray:
    """Each decision's block for the check: runs of consecutive list dates holding about
    ``share`` of the decisions each, or, with a single date, customers split at random."""
    count = max(2, round(1 / share))
    dates = frame["as_of"]
    if dates.nunique() == 1:
        drawn = coin("uplift-evaluation", frame["customer_id"], pd.Timestamp(dates.iloc[0]).date())
        return np.minimum((drawn * count).astype(int), count - 1)
    per_date = dates.value_counts().sort_index()
    before = (per_date.cumsum() - per_date) / len(frame)  # share of decisions on earlier dates
    block = np.minimum((before * count).astype(int), count - 1)
    return dates.map(block).to_numpy(int)


def _picks(
    rows: pd.DataFrame,
    problem: np.ndarray,
    k: np.ndarray,
    effects: Effects,
    catalogue: tuple[InterventionConfig, ...],
    model: ChurnModel,
    rules: ReasonsConfig,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """On ``rows``: the rows, the action taken (-1: held out), the learned uplift, and the
    picks of the learned policy and of today's (the catalogue's assumed success rates)."""
    rows = rows.reset_index(drop=True)
    names = [i.name for i in catalogue]
    uplift, _ = effects.lookup(names, problem, rows["churn_probability"].to_numpy(float))
    context = rows.drop(columns=["group", "churned", "propensity"])
    learned, _ = best_pick(best_cases(context, catalogue, effects)[0])
    fits = fitting(context, drivers_of(model, rows, rules), model, catalogue)
    current, _ = best_pick(np.where(fits, best_cases(context, catalogue)[0], -np.inf))
    action = np.where(rows["group"] == "treated", k, -1)
    return rows, action, uplift, learned, current


def _qini(rows: pd.DataFrame, uplift: np.ndarray, name: str) -> pd.DataFrame:
    """Qini curve of intervention ``name``'s decisions ranked by their learned ``uplift``."""
    mine = (rows["intervention"] == name).to_numpy()
    score = np.nan_to_num(uplift[mine], nan=-np.inf)
    part = rows[mine]
    return qini(score, part["churned"].to_numpy(), (part["group"] == "treated").to_numpy())
