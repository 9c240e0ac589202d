"""Rolling-origin backtests: how the model would have done, retrained at each past date.

At each origin ``O`` (``--from`` to ``--to`` every ``--every-days``) a model is trained exactly
as ``churnguard train`` would have trained it then: on the ``[train]`` snapshots known at
``O`` (every ``[train] every_days`` from ``[train] start``, the last one a purge before ``O`` so
no training label reaches past it), stopping early and calibrating on its own last snapshot.
It then scores the customers at ``O``, whose outcomes over the horizon the data holds. Each
origin reports ROC-AUC, PR-AUC, calibration error and lift at 10 % with 95 % bootstrap
intervals, beside the logistic baseline (and BG/NBD when the data has events); the overall row
pools every origin's predictions.

Features and labels for every date are built in one pass; each origin's model sees only the
rows of its own training snapshots.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churnguard import charts
from churnguard.asof import normalize_as_of
from churnguard.config import PipelineConfig
from churnguard.contract import Dataset, load_dataset
from churnguard.dataset import SnapshotSplit, build_training_set, check_label_windows
from churnguard.errors import ConfigError
from churnguard.evaluation import Evaluation
from churnguard.features import plan_features
from churnguard.io import atomic_path
from churnguard.labels import label_window_end
from churnguard.logs import Stages
from churnguard.model import fit
from churnguard.report import figure, page, table, with_interval
from churnguard.synth import true_hazard
from churnguard.training import Progress, bgnbd_baseline, inner_split

#: The figures a backtest follows over time: (metric key, label).
TRACKED = (
    ("roc_auc_score", "ROC-AUC"),
    ("pr_auc_score", "PR-AUC"),
    ("expected_calibration_error", "calibration error (ECE)"),
    ("lift_top_10pct", "lift, top 10 %"),
)
#: The scores compared at each origin.
SCORES = ("model", "baseline", "bgnbd")


@dataclass
class Origin:
    """One origin: the snapshots its model trained on and the evaluation at the origin."""

    as_of: dt.datetime
    train_snapshots: tuple[dt.datetime, ...]
    train_rows: int
    evaluation: Evaluation
    note: str | None = None

    def to_json(self) -> dict[str, object]:
        ev = self.evaluation
        return {
            "as_of": self.as_of.date().isoformat(),
            "train_snapshots": [d.date().isoformat() for d in self.train_snapshots],
            "train_rows": self.train_rows,
            "rows": int(ev.y_true.size),
            "churn_rate": float(ev.y_true.mean()),
            **_figures(ev),
            "note": self.note,
        }


@dataclass
class BacktestRun:
    """Every origin, the pooled figures, and the files written (if any)."""

    origins: list[Origin]
    overall: Evaluation
    files: dict[str, Path]

    def to_json(self) -> dict[str, object]:
        return {
            "origins": [o.to_json() for o in self.origins],
            "overall": {"rows": int(self.overall.y_true.size), **_figures(self.overall)},
        }


def backtest(
    config: PipelineConfig,
    *,
    start: dt.date | dt.datetime | str,
    end: dt.date | dt.datetime | str,
    every_days: int,
    out: Path | None = None,
    dataset: Dataset | None = None,
    progress: Progress | None = None,
) -> BacktestRun:
    """Retrain and evaluate at each origin from ``start`` to ``end`` every ``every_days`` days
    (see the module); with ``out``, write ``backtest.json`` and ``report.html`` there, only
    once every origin is done.

    Raises
    ------
    ConfigError
        Undated churn (``labels``), no ``[train] start``, or an origin with no training
        snapshot before it.
    LeakageError
        An origin's label window runs past the end of the data.
    """
    if config.churn.definition == "labels":
        raise ConfigError("backtest needs dated churn labels (inactivity or subscription)")
    if not config.train.start:
        raise ConfigError("backtest needs [train] start: the first snapshot a model trains on")
    if every_days < 1:
        raise ConfigError(f"--every-days must be at least 1, got {every_days}")
    first, last = normalize_as_of([start, end])
    if last < first:
        raise ConfigError(f"--to {last.date()} is before --from {first.date()}")
    step = dt.timedelta(days=every_days)
    origins = [first + step * i for i in range((last - first) // step + 1)]
    say = Stages(progress)
    if dataset is None:
        say("loading and validating data")
        dataset = load_dataset(
            config.data, definition=config.churn.definition, engine=config.engine
        )
    churn = config.churn
    check_label_windows(
        origins, data_end=label_window_end(dataset, churn=churn), horizon_days=churn.horizon_days
    )
    purge = churn.horizon_days if config.train.purge_days < 0 else config.train.purge_days
    grid = _training_grid(config, origins, purge)
    known = {o: tuple(d for d in grid if d <= o - dt.timedelta(days=purge)) for o in origins}
    for origin, snapshots in known.items():
        if not snapshots:
            raise ConfigError(
                f"origin {origin.date()}: no [train] snapshot from {config.train.start} is "
                f"{purge} days before it; start the backtest later or train.start earlier"
            )
    plan = plan_features(
        dataset,
        config=config.features,
        activity_events=churn.activity_events,
        horizon_days=churn.horizon_days,
    )
    say("building features and labels", f"at {len(grid) + len(origins)} dates")
    dates = sorted({*grid, *origins})
    frame = build_training_set(
        dataset, as_of=dates, churn=churn, features=config.features, plan=plan
    )
    say.rows = len(frame)
    features = list(plan.specs)
    folder = dataset.tables["customers"].path.parent
    done = []
    for origin, snapshots in known.items():
        say("training and evaluating", f"at {origin.date()}")
        fit_frame = frame[frame["as_of"].isin(snapshots)]
        valid = frame[frame["as_of"] == pd.Timestamp(origin)].reset_index(drop=True)
        if valid["churned"].nunique() < 2:
            raise ConfigError(
                f"origin {origin.date()}: its customers need both churners and stayers to be "
                f"judged, got {len(valid):,} customers of one kind"
            )
        split = SnapshotSplit(snapshots, (origin,), purge, churn.horizon_days)
        inner_fit, inner_valid, note = inner_split(fit_frame, split, config)
        result = fit(inner_fit, inner_valid, features=features, seed=config.train.seed)
        evaluation = Evaluation(
            y_true=valid["churned"].to_numpy(),
            probability=result.model.churn_probability(valid),
            baseline_probability=result.baseline.churn_probability(valid),
            bgnbd_probability=bgnbd_baseline(valid, churn.horizon_days),
            true_hazard=true_hazard(folder, valid),
            campaign=config.evaluation,
        )
        done.append(Origin(origin, snapshots, len(fit_frame), evaluation, note))
        say.rows = len(valid)
    overall = _pooled(done, config)
    run = BacktestRun(done, overall, {})
    if out is not None:
        say("writing the report")
        run.files = _write(run, Path(out), config)
    say.done()
    return run


def _training_grid(
    config: PipelineConfig, origins: list[dt.datetime], purge: int
) -> list[dt.datetime]:
    """Training snapshots for every origin: every ``[train] every_days`` from ``[train]
    start`` up to the last origin's purge; each origin takes those a purge before it."""
    (first,) = normalize_as_of([config.train.start])
    step = dt.timedelta(days=config.train.every_days)
    limit = origins[-1] - dt.timedelta(days=purge)
    return [first + step * i for i in range(max((limit - first) // step + 1, 0))]


def _pooled(origins: list[Origin], config: PipelineConfig) -> Evaluation:
    """One evaluation of every origin's predictions together (each by its own model)."""

    def joined(name: str) -> np.ndarray | None:
        parts = [getattr(o.evaluation, name) for o in origins]
        return None if any(p is None for p in parts) else np.concatenate(parts)

    return Evaluation(
        y_true=joined("y_true"),
        probability=joined("probability"),
        baseline_probability=joined("baseline_probability"),
        bgnbd_probability=joined("bgnbd_probability"),
        true_hazard=joined("true_hazard"),
        campaign=config.evaluation,
    )


def _figures(ev: Evaluation) -> dict[str, object]:
    """Each score's tracked metrics with their intervals, and the verdicts."""
    out: dict[str, object] = {}
    for who in SCORES:
        if who not in ev.metrics:
            continue
        out[who] = {
            key: {
                "value": ev.metrics[who][key],
                "interval": ev.intervals.get(who, {}).get(key),
            }
            for key, _ in TRACKED
        }
    out["against"] = dict(ev.against)
    if "true_hazard" in ev.metrics:
        out["true_hazard_roc_auc"] = ev.metrics["true_hazard"]["roc_auc_score"]
    return out


def _write(run: BacktestRun, out: Path, config: PipelineConfig) -> dict[str, Path]:
    """``backtest.json`` and ``report.html`` under ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "backtest.json", "report": out / "report.html"}
    with atomic_path(files["json"]) as tmp:
        tmp.write_text(json.dumps(run.to_json(), indent=2))
    with atomic_path(files["report"]) as tmp:
        tmp.write_text(render(run, config))
    return files


def render(run: BacktestRun, config: PipelineConfig) -> str:
    """The backtest report: one row per origin and overall, then each metric over time."""
    rows = []
    for label, ev in [
        *((o.as_of.date().isoformat(), o.evaluation) for o in run.origins),
        ("overall", run.overall),
    ]:
        cells = [label, f"{ev.y_true.size:,}", f"{ev.y_true.mean():.1%}"]
        for key, _ in TRACKED:
            cells.append(_cell(ev, "model", key))
            cells.append(_cell(ev, "baseline", key))
        cells.append(ev.lead("baseline") or "")
        cells.append(ev.lead("bgnbd") or "")
        rows.append(cells)
    head = ["origin", "customers", "churn"]
    for _, name in TRACKED:
        head += [f"{name}: model", f"{name}: baseline"]
    head += ["model against the baseline", "model against BG/NBD"]
    churn = config.churn
    facts = [
        ("churn", f"{churn.definition}, {churn.horizon_days}-day horizon"),
        ("origins", f"{len(run.origins)}, retrained at each on the snapshots known then"),
        (
            "training snapshots",
            f"every {config.train.every_days} days from {config.train.start}, the last a purge "
            "before the origin",
        ),
    ]
    notes = sorted({o.note for o in run.origins if o.note})
    title = f"rolling-origin backtest: {len(run.origins)} origins"
    return page(
        title,
        [
            f"<h1>{html.escape(title)}</h1>",
            table(["", ""], [[k, v] for k, v in facts], header=False),
            *(f'<p class="warn">{html.escape(n)}</p>' for n in notes),
            "<h2>Per origin and overall (95 % intervals)</h2>",
            table(head, rows),
            "<h2>Over time</h2>",
            figure("Metrics at each origin", charts.over_time(_series(run))),
        ],
    )


def _cell(ev: Evaluation, who: str, key: str) -> str:
    if who not in ev.metrics:
        return ""
    return with_interval(ev, who, key, "{:.2f}" if key.startswith("lift") else "{:.4f}")


def _series(run: BacktestRun) -> pd.DataFrame:
    """Long table of (origin, score, metric, value, low, high) for the charts."""
    rows = []
    for o in run.origins:
        ev = o.evaluation
        for who in SCORES:
            if who not in ev.metrics:
                continue
            for key, label in TRACKED:
                low, high = ev.intervals.get(who, {}).get(key, [np.nan, np.nan])
                rows.append((o.as_of, who, label, ev.metrics[who][key], low, high))
    return pd.DataFrame(rows, columns=["as_of", "score", "metric", "value", "low", "high"])
