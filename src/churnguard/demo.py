"""The whole flow on simulated data, as one call: generate, validate, train, backtest, score
tonight's list, measure the past campaigns and learn from them, and compute the KPIs, everything
under one folder.

The simulated business ran :data:`CAMPAIGNS` monthly randomised retention campaigns with known
effects, so its ``treatments`` table is the contact log the outcomes and uplift steps read.

The dates follow from the simulated data: training snapshots start once the features have
their longest look-back (:data:`HISTORY_DAYS`), the backtest is at the last date whose label
window the data covers, training ends :data:`GAP_DAYS` before it, and tonight's run is the
day after the data ends.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from churnguard import scoring, training
from churnguard.config import PipelineConfig, load_config
from churnguard.contract import load_dataset
from churnguard.kpis import KpiReport, retention_report, write_kpis
from churnguard.labels import label_window_end
from churnguard.logs import Stages, run_id, set_run
from churnguard.synth import GenerationSummary, generate
from churnguard.treatment_log import Outcomes, outcomes
from churnguard.uplift import UpliftRun, learn_uplift

#: Days of data before the first training snapshot: trends compare the widest window (90
#: days) with the one before it, so a snapshot needs half a year of history.
HISTORY_DAYS = 182
#: Days between the last training snapshot and the backtest date.
GAP_DAYS = 30
#: Rows of tonight's list.
TOP_N = 500
#: Monthly randomised campaigns in the simulated data, the last a horizon before its end.
CAMPAIGNS = 6

#: Told each finished step: its number, name, a sentence, and the file or folder it wrote.
Step = Callable[[int, str, str, Path | None], None]


@dataclass
class DemoRun:
    """What the demo made, step by step."""

    out: Path
    data: GenerationSummary
    trained: training.TrainingRun
    backtest: training.Backtest
    scored: scoring.ScoreRun
    outcomes: Outcomes
    uplift: UpliftRun
    kpis: KpiReport
    kpi_files: dict[str, Path]
    tonight: dt.datetime
    next_command: str


def run_demo(
    out: Path,
    *,
    customers: int = 5_000,
    seed: int = 7,
    step: Step | None = None,
    busy: Callable[[str], None] | None = None,
) -> DemoRun:
    """Run the demo into ``out``: ``data/``, ``models/`` (with the report), ``evaluation/``,
    ``scores/<date>/``, ``treatment_log.parquet``, ``effects/`` and ``kpis/``. ``step`` hears
    of each finished step, ``busy`` of each long one starting."""
    tell = step or (lambda *_: None)
    working = Stages(busy)  # each long step is a logged stage, and what busy hears
    data_dir = out / "data"
    working("generating")
    summary = generate(
        data_dir, customers=customers, days=730, seed=seed, force=True, campaigns=CAMPAIGNS
    )
    tell(1, "data", f"{summary.customers:,} customers, {summary.events:,} events", data_dir)
    base = {"data.path": data_dir, "model.registry": out / "models"}
    cfg = load_config(None, {**base, "churn.definition": "subscription"})
    dataset = load_dataset(cfg.data, definition=cfg.churn.definition, engine=cfg.engine)
    window_end = label_window_end(dataset, churn=cfg.churn)
    backtest_day = dt.datetime.combine(window_end.date(), dt.time())
    cfg = _training_period(cfg, summary.start + dt.timedelta(days=HISTORY_DAYS), backtest_day)
    rows = sum(t.rows for t in dataset.tables.values())
    tell(2, "validate", f"{rows:,} rows pass the data contract", None)

    working("training")
    run = training.train(cfg, dataset=dataset)
    m = run.evaluation.metrics
    tell(
        3,
        "train",
        f"{run.train_rows:,} rows over {len(run.split.train)} monthly snapshots; out of time "
        f"at {run.split.validation[0].date()}: ROC-AUC {m['model']['roc_auc_score']:.3f} "
        f"(baseline {m['baseline']['roc_auc_score']:.3f}, true hazard "
        f"{m['true_hazard']['roc_auc_score']:.3f}), calibration error "
        f"{m['model']['expected_calibration_error']:.3f}",
        run.report,
    )

    working("backtesting")
    backtest = training.evaluate(run.folder, dataset, as_of=backtest_day, out=out / "evaluation")
    b, ranking = backtest.evaluation.metrics["model"], backtest.evaluation.ranking or {}
    tell(
        4,
        "evaluate",
        f"backtest at {backtest_day.date()}: ROC-AUC {b['roc_auc_score']:.3f}; with a budget "
        f"of {ranking.get('budget', 0):,.0f} and an assumed success rate of "
        f"{ranking.get('success_rate', 0):.0%}, ranking by expected benefit saves "
        f"{ranking.get('by_expected_benefit', 0):,.0f} against "
        f"{ranking.get('by_probability', 0):,.0f} by churn probability (difference "
        f"{ranking.get('difference_low', 0):+,.0f} to {ranking.get('difference_high', 0):+,.0f}, "
        "95 %)",
        backtest.report,
    )

    working("scoring")
    tonight = dt.datetime.combine(summary.end, dt.time())  # the first day after the data
    demo_run = run_id()
    scored = scoring.score(
        load_config(None, {**base, "score.top_n": TOP_N}),
        as_of=tonight,
        out=out / "scores" / str(tonight.date()),
        model=run.folder,
    )
    set_run(demo_run)  # the scoring run logged under its own id; the demo goes on under its
    listed = scored.manifest["rows"]["listed"]
    tell(
        5,
        "score",
        f"{scored.manifest['rows']['scored']:,} customers as of {tonight.date()}, "
        f"value at risk {scored.manifest['value_at_risk_total']:,.0f}; {listed:,} listed",
        scored.files["interventions.csv"],
    )

    working("measuring the campaigns")
    loop_cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, registry=out / "models")
    )
    measured = outcomes(loop_cfg, out=out / "treatment_log.parquet")
    effects = measured.effects.dropna(subset=["saving"])
    best = effects.sort_values("saving", ascending=False).iloc[0]
    tell(
        6,
        "outcomes",
        f"{len(measured.log):,} decisions of {CAMPAIGNS} campaigns labelled; most churn saved: "
        f"{best['intervention']}, {best['saving']:+.1%} ({best['saving_low']:+.1%} to "
        f"{best['saving_high']:+.1%})",
        measured.path,
    )
    working("learning effects")
    learned = learn_uplift(cfg, log=measured.path, out=out / "effects")
    groups = learned.effects.groups
    tell(
        7,
        "uplift",
        f"{int(groups['shown'].sum())} of {len(groups)} intervention and problem groups shown "
        "to help; "
        f"{'promote' if learned.effects.promote else 'do not promote'} the learned effects",
        learned.files["report.html"],
    )

    last = dt.date(tonight.year, tonight.month, 1)
    year_before = dt.date(last.year - 1, last.month, 1)
    working("computing KPIs")
    report, cohorts = retention_report(dataset, start=year_before, end=last, churn=cfg.churn)
    files = write_kpis(report, cohorts, out / "kpis")
    working.done()
    tell(8, "KPIs", "over the last 12 months", out / "kpis")
    command = shlex.join(
        ["churnguard", "score", "--config", "pipelines/nightly.toml", "--data", str(data_dir)]
        + ["--model", str(run.folder), "--as-of", str(tonight.date())]
    )
    return DemoRun(
        out, summary, run, backtest, scored, measured, learned, report, files, tonight, command
    )


def _training_period(
    cfg: PipelineConfig, first: dt.date, backtest_day: dt.datetime
) -> PipelineConfig:
    """``cfg`` with monthly training snapshots from ``first`` to :data:`GAP_DAYS` before the
    backtest."""
    end = (backtest_day - dt.timedelta(days=GAP_DAYS)).date()
    train = dataclasses.replace(cfg.train, start=str(first), end=str(end))
    return dataclasses.replace(cfg, train=train)
