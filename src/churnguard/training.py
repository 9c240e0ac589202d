"""Train and backtest from a pipeline config: the API behind ``churnguard train`` and ``evaluate``.

:func:`train` builds the training set (out-of-time snapshots, or a stratified hold-out of the
labelled customers in ``labels`` mode), fits the model, stops it early and calibrates it (and
optionally searches hyperparameters) on an inner split of the training rows only, evaluates the
saved model on the held-out rows, which nothing was chosen on, and saves a bundle with its HTML
report to the registry. :func:`evaluate` backtests a saved model on a later
as-of date of any dataset with the same tables.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from churnguard import drift
from churnguard.asof import normalize_as_of
from churnguard.config import (
    DataConfig,
    EngineConfig,
    PipelineConfig,
    config_from_dict,
    run_catalogue,
)
from churnguard.contract import Dataset, load_dataset
from churnguard.dataset import (
    SnapshotSplit,
    build_training_set,
    check_label_windows,
    training_frames,
    training_set,
)
from churnguard.errors import ConfigError
from churnguard.evaluation import Evaluation
from churnguard.features import FeaturePlan, plan_features
from churnguard.interventions import priced
from churnguard.io import atomic_path
from churnguard.labels import data_end, far_rows_warning, label_window_end, latest
from churnguard.logs import Stages, run_id
from churnguard.measure import effects_by_intervention, read_log
from churnguard.model import ChurnModel, TrainResult, Tuning, fit, tune
from churnguard.promotion import Decision, champion_on, decide
from churnguard.registry import check_schema, load_baseline, load_model, promote, save_model
from churnguard.report import render_report, write_report
from churnguard.synth import true_hazard
from churnguard.tracking import log_training, require_mlflow
from churnguard.value import charged, values_at

#: Called with a short message as each stage starts (the CLI shows it as a status line).
Progress = Callable[[str], None]

REPORT = "report.html"
log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """A trained, evaluated and saved model, and how it was made."""

    folder: Path
    result: TrainResult
    evaluation: Evaluation
    train_rows: int
    train_churn_rate: float
    validation_rows: int
    #: Out-of-time split; None in ``labels`` mode (stratified random hold-out).
    split: SnapshotSplit | None
    tuning: Tuning | None
    #: Whether it serves: the first model, promoted, or a challenger, and why.
    promotion: Decision
    warnings: list[str] = field(default_factory=list)
    #: The registered MLflow model (``models:/<name>/<version>``) when ``[model] mlflow``.
    mlflow_uri: str | None = None

    @property
    def report(self) -> Path:
        return self.folder / REPORT


def train(
    config: PipelineConfig,
    *,
    dataset: Dataset | None = None,
    tune_params: bool = False,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> TrainingRun:
    """Train, evaluate and save a model as ``config`` says; see the module docstring.

    Raises
    ------
    DataContractError, ConfigError, LeakageError
        Bad data, or dates that leave no training snapshot before the purge (the message says
        what to change).
    """
    say = Stages(progress)
    if config.model.mlflow:
        require_mlflow()  # before minutes of training, not after
    if dataset is None:
        say("loading and validating data")
        dataset = load_dataset(
            config.data, definition=config.churn.definition, engine=config.engine
        )
    plan = plan_features(
        dataset,
        config=config.features,
        activity_events=config.churn.activity_events,
        horizon_days=config.churn.horizon_days,
    )
    say("building features and labels")
    split: SnapshotSplit | None = None
    warnings: list[str] = []
    if config.churn.definition == "labels":
        fit_frame, valid = _holdout(_labelled(dataset, config, plan), config)
    else:
        fit_frame, valid, split = training_frames(
            dataset, train=config.train, churn=config.churn, features=config.features, plan=plan
        )
        end, beyond = data_end(dataset, churn=config.churn)
        if beyond:
            warnings.append(far_rows_warning(beyond, end))
        if split.reduced_purge:
            warnings.append(
                f"purge of {split.purge_days} days is shorter than the {split.horizon_days}-day "
                "horizon: the labels of the latest training snapshots overlap the validation "
                "period, so the validation metrics may be optimistic"
            )
    say.rows = len(fit_frame) + len(valid)
    features = list(plan.specs)
    # early stopping, calibration and any search see the training rows alone: the validation
    # rows judge the saved model and nothing is chosen on them
    inner_fit, inner_valid, note = inner_split(fit_frame, split, config)
    if note:
        warnings.append(note)
    tuning = None
    if tune_params:
        budget = f"{config.train.tune_trials} trials or {config.train.tune_seconds} s"
        say("tuning", f"on {len(inner_fit):,} rows ({budget})")
        tuning = tune(
            inner_fit,
            inner_valid,
            features=features,
            seed=config.train.seed,
            trials=config.train.tune_trials,
            seconds=config.train.tune_seconds,
            on_trial=lambda done, best: say.tell(
                f"tuning: trial {done}, best log loss {best:.5f}"
            ),
        )
    say("training", f"on {len(inner_fit):,} rows, stopping, calibrating on {len(inner_valid):,}")
    result = fit(
        inner_fit,
        inner_valid,
        features=features,
        seed=config.train.seed,
        params=tuning.params if tuning else None,
    )
    say.rows = len(inner_fit)
    say("evaluating")
    champion = champion_on(config, valid, features)
    probability = result.model.churn_probability(valid)
    evaluation = Evaluation(
        y_true=valid["churned"].to_numpy(),
        probability=probability,
        pricing=list_pricing(dataset, valid, probability, plan, config, result.model),
        baseline_probability=result.baseline.churn_probability(valid),
        bgnbd_probability=bgnbd_baseline(valid, config.churn.horizon_days),
        champion_probability=champion.probability,
        true_hazard=true_hazard(_folder(dataset), valid),
        importance=result.model.importance(valid, seed=config.train.seed),
        campaign=config.evaluation,
    )
    decision = decide(evaluation, champion, auto=config.model.auto_promote)
    facts = _facts(config, fit_frame, valid, split, tuning, result, len(inner_valid))
    facts.append(("serving", decision.reason))
    report = render_report(
        evaluation,
        title=f"churn model '{config.model.name}': out-of-time evaluation",
        facts=facts,
        warnings=warnings,
    )
    say("saving")
    folder = save_model(
        result,
        registry=config.model.registry,
        name=config.model.name,
        metadata={
            "config": config.to_dict(),
            "config_fingerprint": config.fingerprint(),
            "data_fingerprint": dataset.fingerprint(),
            "train_snapshots": _dates(split.train) if split else [],
            "validation_snapshots": _dates(split.validation) if split else [],
            "purge_days": split.purge_days if split else None,
            "reduced_purge": split.reduced_purge if split else False,
            "rows": {
                "train": len(fit_frame),
                "early_stopping_and_calibration": len(inner_valid),
                "validation": len(valid),
            },
            "tuning": None if tuning is None else vars(tuning),
            "warnings": warnings,
            "metrics": evaluation.to_json(),
            "drift_reference": _drift_reference(fit_frame, result, config.train.seed),
            "run_id": run_id() or None,
            "promotion": {
                "champion_before": champion.version,
                "decision": decision.status,
                "reason": decision.reason,
            },
        },
        files={REPORT: report},
        now=now,
    )
    say.done()
    for warning in warnings:
        log.warning("%s", warning)
    log.info("%s: %s", folder.name, decision.reason)
    mlflow_uri = None
    if config.model.mlflow:  # before promotion: a failed log leaves the champion serving
        say("logging to MLflow")
        tags = {"churnguard.run_id": run_id(), "churnguard.promotion": decision.status}
        mlflow_uri = log_training(config, folder, evaluation, tags=tags)
        say.done()
    if decision.promote:
        promote(
            config.model.registry,
            config.model.name,
            folder.name,
            reason=decision.reason,
            action="auto",
        )
    return TrainingRun(
        folder=folder,
        result=result,
        evaluation=evaluation,
        train_rows=len(fit_frame),
        train_churn_rate=float(fit_frame["churned"].mean()),
        validation_rows=len(valid),
        split=split,
        tuning=tuning,
        promotion=decision,
        warnings=warnings,
        mlflow_uri=mlflow_uri,
    )


@dataclass
class Backtest:
    """A saved model's evaluation at a later as-of date."""

    evaluation: Evaluation
    as_of: dt.datetime
    model: Path
    rows: int
    report: Path | None
    #: E.g. the as-of date lies inside a training snapshot's label window (figures optimistic).
    warnings: list[str] = field(default_factory=list)


def evaluate(
    model: Path,
    data: Dataset | DataConfig | Path | str,
    *,
    as_of: dt.date | dt.datetime | str,
    out: Path | None = None,
    engine: EngineConfig | None = None,
    log: Path | None = None,
) -> Backtest:
    """Score the customers at ``as_of`` with the saved model and compare with what happened.

    The churn definition, horizon, features and campaign are the ones the model was trained
    with. ``data`` may be another dataset than the training one (a later export), as long as it
    yields the model's features, given as a folder or a ``[data]`` config (per-table paths),
    read on ``engine`` (default: the one the model was trained on). With ``out``,
    ``report.html`` and ``metrics.json`` go there. The saving of a benefit-ranked list is priced
    with the campaign's *assumed* success rate; a treatment ``log`` (``churnguard outcomes``)
    adds the churn each intervention saved, measured against its holdout.

    Raises
    ------
    ModelRegistryError
        The bundle fails its manifest check, or the data lacks the model's features.
    LeakageError
        The data does not yet cover ``as_of`` + horizon, so outcomes are unknown.
    """
    say = Stages()
    say("loading the model and the data")
    churn_model, metadata = load_model(model)
    config = config_from_dict(metadata["config"], source=f"{model}/metadata.json")
    dataset = (
        data
        if isinstance(data, Dataset)
        else load_dataset(
            data if isinstance(data, DataConfig) else Path(data),
            definition=config.churn.definition,
            engine=engine or config.engine,
        )
    )
    when = normalize_as_of([as_of])
    check_label_windows(
        when,
        data_end=label_window_end(dataset, churn=config.churn),
        horizon_days=config.churn.horizon_days,
    )
    plan = plan_features(
        dataset,
        config=config.features,
        activity_events=config.churn.activity_events,
        horizon_days=config.churn.horizon_days,
    )
    check_schema(churn_model, list(plan.specs), where=str(_folder(dataset)))
    warnings = _overlaps(metadata.get("train_snapshots", []), when[0], config.churn.horizon_days)
    for warning in warnings:
        logging.getLogger(__name__).warning("%s", warning)  # ``log`` is the treatment log here
    say("scoring and evaluating")
    frame = build_training_set(
        dataset, as_of=when, churn=config.churn, features=config.features, plan=plan
    )
    if frame.empty:
        raise ConfigError(f"no customer is in the churn population at {when[0].date()}")
    baseline = load_baseline(model)
    probability = churn_model.churn_probability(frame)
    pricing = list_pricing(dataset, frame, probability, plan, config, churn_model)
    evaluation = Evaluation(
        y_true=frame["churned"].to_numpy(),
        probability=probability,
        customer_value=pricing["customer_value"].to_numpy(),
        pricing=pricing,
        baseline_probability=baseline.churn_probability(frame),
        bgnbd_probability=bgnbd_baseline(frame, config.churn.horizon_days),
        true_hazard=true_hazard(_folder(dataset), frame),
        importance=churn_model.importance(frame),
        campaign=config.evaluation,
        measured=None if log is None else effects_by_intervention(read_log(Path(log))),
    )
    say.rows = len(frame)
    report = None
    if out is not None:
        say("writing the report")
        report = write_report(
            Path(out) / REPORT,
            evaluation,
            title=f"backtest of {metadata['name']} {metadata['version']} at {when[0].date()}",
            warnings=warnings,
            facts=[
                ("model", str(model)),
                ("trained on snapshots", ", ".join(metadata.get("train_snapshots", []))),
                ("as-of date", str(when[0].date())),
                ("customers scored", f"{len(frame):,}"),
            ],
        )
        with atomic_path(Path(out) / "metrics.json") as tmp:
            tmp.write_text(json.dumps(evaluation.to_json(), indent=2))
    say.done()
    return Backtest(evaluation, when[0], Path(model), len(frame), report, warnings)


def _overlaps(snapshots: list[str], when: dt.datetime, horizon_days: int) -> list[str]:
    """The warning when the outcomes at ``when`` overlap a training snapshot's (the model
    learned them, so the figures are optimistic); none otherwise."""
    horizon = dt.timedelta(days=horizon_days)
    dates = normalize_as_of(snapshots) if snapshots else []
    near = [d for d in dates if abs(when - d) < horizon]
    if not near:
        return []
    clean = max(dates) + horizon
    return [
        f"as-of {when.date()}: its {horizon_days}-day label window overlaps that of training "
        f"snapshot {near[0].date()}, so the model learned these outcomes and the figures are "
        f"optimistic; evaluate at {clean.date()} or later"
    ]


def list_pricing(
    dataset: Dataset,
    frame: pd.DataFrame,
    probability: np.ndarray,
    plan: FeaturePlan,
    config: PipelineConfig,
    model: ChurnModel,
) -> pd.DataFrame:
    """Each row's value and intervention as a nightly list at its as-of date would price
    and choose them (:func:`~churnguard.interventions.priced`, with ``customer_value``), so
    that the report's best list size is the night's."""
    column = config.value.column if config.value.column in frame else None
    worth = charged(frame, column, config.value)
    value = np.zeros(len(frame))
    for as_of, rows in frame.groupby("as_of").indices.items():
        value[rows] = values_at(
            dataset,
            worth.iloc[rows],
            probability[rows],
            plan=plan,
            as_of=pd.Timestamp(as_of).to_pydatetime(),
            horizon_days=config.churn.horizon_days,
        )
    catalogue = run_catalogue(config)
    chosen = priced(frame, probability, value, model, catalogue, config.reasons)
    return chosen.assign(customer_value=value)


def bgnbd_baseline(frame: pd.DataFrame, horizon_days: int) -> np.ndarray | None:
    """The BG/NBD feature's chance of no activity in the horizon (the classic baseline of a
    purchase log), None when the data has no events; a customer never active counts as silent."""
    column = f"bgnbd_p_active_{horizon_days}d"
    if column not in frame:
        return None
    return 1.0 - frame[column].fillna(0.0).to_numpy(float)


def _drift_reference(frame: pd.DataFrame, result: TrainResult, seed: int) -> dict[str, object]:
    """Feature and score distributions of the training rows (a seeded sample beyond 200k)."""
    rows = frame if len(frame) <= 200_000 else frame.sample(200_000, random_state=seed)
    model = result.model
    return drift.reference(rows, model.features, model.churn_probability(rows))


def _folder(dataset: Dataset) -> Path:
    """The folder the customers table came from (where a generated ``truth`` table sits)."""
    return dataset.tables["customers"].path.parent


def _dates(dates: tuple[dt.datetime, ...]) -> list[str]:
    return [d.date().isoformat() for d in dates]


def labels_as_of(dataset: Dataset, config: PipelineConfig) -> dt.datetime:
    """The as-of date of a ``labels``-mode snapshot: ``[train] as_of`` if given (one date), else
    the day after the latest date in the data, so every customer and event counts."""
    if config.train.as_of:
        if len(config.train.as_of) != 1:
            raise ConfigError(
                "labels mode trains on one snapshot: give one date in train.as_of, or none"
            )
        return normalize_as_of(config.train.as_of)[0]
    last = latest(
        dataset,
        {
            "customers": ["signup_date"],
            "events": ["timestamp"],
            "subscriptions": ["start_date", "end_date"],
        },
    )
    if last is None:
        return dt.datetime(2000, 1, 1)
    return normalize_as_of([last.date() + dt.timedelta(days=1)])[0]


def _labelled(dataset: Dataset, config: PipelineConfig, plan: FeaturePlan) -> pd.DataFrame:
    """Every labelled customer, or the ``[train] sample_fraction`` sample of them."""
    return training_set(
        dataset,
        as_of=[labels_as_of(dataset, config)],
        churn=config.churn,
        features=config.features,
        plan=plan,
        sample=(config.train.sample_fraction, config.train.seed),
    ).to_pandas()


def _holdout(frame: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified random hold-out of ``train.holdout_fraction`` of the labelled rows."""
    counts = frame["churned"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise ConfigError(
            f"the labels table needs at least 2 churned and 2 retained customers with features, "
            f"got {counts.to_dict()}"
        )
    fit_frame, valid = train_test_split(
        frame,
        test_size=config.train.holdout_fraction,
        stratify=frame["churned"],
        random_state=config.train.seed,
    )
    return fit_frame.reset_index(drop=True), valid.reset_index(drop=True)


def inner_split(
    fit_frame: pd.DataFrame, split: SnapshotSplit | None, config: PipelineConfig
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """A split of the training rows alone for early stopping, calibration and the search, so
    the validation rows stay unseen until they judge the model.

    Out of time when the training snapshots allow it (the last one, with the same purge before
    it); otherwise a stratified random hold-out, with a note saying so.
    """
    if split is not None and len(split.train) > 1:
        last = split.train[-1]
        cutoff = pd.Timestamp(last - dt.timedelta(days=split.purge_days))
        inner_fit = fit_frame[fit_frame["as_of"] <= cutoff]
        inner_valid = fit_frame[fit_frame["as_of"] == pd.Timestamp(last)]
        if all(not f.empty and f["churned"].nunique() == 2 for f in (inner_fit, inner_valid)):
            return inner_fit, inner_valid, None
    fit_part, valid_part = _holdout(fit_frame, config)
    note = None
    if split is not None:
        note = (
            "early stopping and calibration used a random hold-out of the training rows: too "
            "few training snapshots (with both classes) for an out-of-time inner split"
        )
    return fit_part, valid_part, note


def _facts(
    config: PipelineConfig,
    fit_frame: pd.DataFrame,
    valid: pd.DataFrame,
    split: SnapshotSplit | None,
    tuning: Tuning | None,
    result: TrainResult,
    inner_rows: int,
) -> list[tuple[str, str]]:
    """The lines at the top of the report: what was trained on what, and how."""
    facts = [
        (
            "churn definition",
            f"{config.churn.definition}, {config.churn.horizon_days}-day horizon",
        ),
        (
            "training rows",
            f"{len(fit_frame):,} ({fit_frame['churned'].mean():.1%} churned)",
        ),
        ("validation rows", f"{len(valid):,} ({valid['churned'].mean():.1%} churned)"),
    ]
    if split is not None:
        facts += [
            ("training snapshots", ", ".join(_dates(split.train))),
            ("validation snapshots (out of time)", ", ".join(_dates(split.validation))),
            ("purge", f"{split.purge_days} days"),
        ]
    else:
        facts.append(
            ("validation", f"stratified random {config.train.holdout_fraction:.0%} hold-out")
        )
    facts += [
        ("features", str(len(result.model.features))),
        (
            "boosting rounds",
            f"{result.best_iteration} (early stopping on {inner_rows:,} training rows: the last "
            "training snapshot, or a random part of the rows; calibration on the same rows)",
        ),
        ("calibration", result.model.calibrator.method),
        (
            "blend",
            f"{result.model.calibrator.baseline_weight:.0%} of the logistic baseline's log-odds "
            "(the weight with the least out-of-fold log loss on the same training rows)",
        ),
    ]
    if tuning is not None:
        facts.append(
            (
                "tuning",
                f"{tuning.trials} trials in {tuning.seconds:.0f} s; inner log loss "
                f"{tuning.default_log_loss:.5f} (defaults) -> {tuning.best_log_loss:.5f}",
            )
        )
    return facts
