"""The ``churnguard`` command line: parse options, load config, call the library, print."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from churnguard import logs
from churnguard.config import PipelineConfig, load_config, run_catalogue
from churnguard.errors import ChurnguardError, ConfigError
from churnguard.io import printable

if TYPE_CHECKING:
    from churnguard.contract import Dataset
    from churnguard.evaluation import Evaluation
    from churnguard.kpis import KpiReport
    from churnguard.scoring import ScoreRun
    from churnguard.treatment_log import Outcomes
    from churnguard.uplift import UpliftRun

# The library's modules (DuckDB, Ibis, LightGBM, scikit-learn behind them) are imported by the
# commands that use them, so `churnguard --help` answers at once.

app = typer.Typer(
    help="Churn prediction from behavioural data: validate data, build point-in-time "
    "features, train and backtest models, score customers into a ranked intervention list, "
    "report retention KPIs. Start with: churnguard demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
out = Console()
err = Console(stderr=True)
log = logging.getLogger("churnguard")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Pipeline config (TOML), e.g. pipelines/demo.toml."),
]
DataOption = Annotated[
    Path | None,
    typer.Option("--data", "-d", help="Dataset folder; overrides the data path of the config."),
]


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    Engine | None,
    typer.Option(
        "--engine",
        help="Query engine, overriding \\[engine] name; spark needs "
        "churnguard\\[spark] and Java 17+.",
    ),
]


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A bundle folder, or a version of the config's model (a name, champion or "
        "latest); default \\[model] version, which is champion unless set.",
    ),
]


def _config(config: Path | None, **overrides: object) -> PipelineConfig:
    overrides = {k: v.value if isinstance(v, Enum) else v for k, v in overrides.items()}
    return load_config(config, overrides)


def _shown(value: object) -> str:
    """Text from data, paths or errors made safe to print: control characters escaped (no
    terminal escapes, one line) and rich markup escaped (``[red]`` in a name stays text)."""
    return escape(printable(value))


class LogFormat(StrEnum):
    text = "text"
    json = "json"


#: The options every command takes, added to each command's own by :func:`_command`.
_COMMON = (
    inspect.Parameter(
        "verbose",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--verbose", "-v", help="Log every stage, and tracebacks.")
        ],
    ),
    inspect.Parameter(
        "quiet",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool,
            typer.Option("--quiet", "-q", help="Print nothing but warnings and errors (stderr)."),
        ],
    ),
    inspect.Parameter(
        "log_format",
        inspect.Parameter.KEYWORD_ONLY,
        default=LogFormat.text,
        annotation=Annotated[
            LogFormat,
            typer.Option(
                "--log-format",
                help="Log lines on stderr as text, or one JSON object per line (time, level, "
                "run_id, command, stage, seconds, rows, message).",
            ),
        ],
    ),
)
_verbose_everywhere = False


def _fail(message: str, code: int) -> None:
    """The one line a failure ends in: a JSON log line in JSON mode, else ``error: ...``."""
    if _json_logs():
        log.error("%s", message)
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _json_logs() -> bool:
    return any(isinstance(h.formatter, logs.JsonFormatter) for h in logging.getLogger().handlers)


def _command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the common options (-v, -q, --log-format), a run id and a logged end
    (stages log their own starts: score's run id is known only once it has read its inputs),
    and end every failure in one line and an exit code: the error's own code for
    churnguard's errors (2 bad input, 3 model problem), 1 for anything else, whose traceback
    ``--verbose`` logs."""

    @functools.wraps(command)
    def run(
        *args: Any,
        verbose: bool = False,
        quiet: bool = False,
        log_format: LogFormat = LogFormat.text,
        **kwargs: Any,
    ) -> None:
        verbose = verbose or _verbose_everywhere
        level = (
            logging.WARNING
            if quiet
            else logging.INFO
            if verbose or log_format == LogFormat.json or not err.is_terminal
            else logging.ERROR  # a terminal: the status line and the summary say it all
        )
        logs.configure(level, log_format.value, sys.stderr)
        out.quiet = quiet
        global _show_progress
        _show_progress = not quiet and log_format == LogFormat.text and err.is_terminal
        name = command.__name__.removeprefix("models_").replace("_", " ")
        logs.set_run(logs.new_run_id(), name)
        started = time.perf_counter()
        try:
            command(*args, **kwargs)
        except ChurnguardError as exc:
            _fail(printable(exc), exc.exit_code)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            log.info("%s failed", name, exc_info=True)
            _fail(f"{type(exc).__name__}: {printable(exc)}", 1)
        seconds = round(time.perf_counter() - started, 3)
        log.info("done in %.1f s", seconds, extra={"stage": name, "seconds": seconds})

    own = inspect.signature(command, eval_str=True)
    run.__signature__ = own.replace(  # type: ignore[attr-defined]
        parameters=[*own.parameters.values(), *_COMMON]
    )
    run.__annotations__ = {
        **{p.name: p.annotation for p in run.__signature__.parameters.values()},  # type: ignore[attr-defined]
        "return": None,
    }
    return run


_show_progress = False


@contextlib.contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    """A status line on a terminal (its update function); elsewhere the log says it instead."""
    if not _show_progress:
        yield lambda _message: None
        return
    with err.status(text) as status:
        yield status.update


def _load(cfg: PipelineConfig, stages: logs.Stages) -> Dataset:
    """The config's dataset, validated, as a logged stage (rows: every table's)."""
    from churnguard.contract import load_dataset

    stages("loading and validating data")
    dataset = load_dataset(
        cfg.data,
        definition=cfg.churn.definition,
        engine=cfg.engine,
        interventions=[i.name for i in run_catalogue(cfg)],
    )
    stages.rows = sum(info.rows for info in dataset.tables.values())
    for warning in dataset.warnings():
        log.warning("%s", warning)
    return dataset


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every stage (any command's -v).")
    ] = False,
) -> None:
    """churnguard: point-in-time churn features, models and intervention lists."""
    global _verbose_everywhere
    _verbose_everywhere = verbose


@app.command()
@_command
def validate(config: ConfigOption = None, data: DataOption = None) -> None:
    """Check a dataset against the data contract and the config's features; print a summary.

    Exit code 2 and one line naming file, line/row and column on the first problem.
    """
    from churnguard.features import plan_features

    cfg = _config(config, **{"data.path": data})
    stages = logs.Stages()
    dataset = _load(cfg, stages)
    stages.done()
    plan = plan_features(
        dataset,
        config=cfg.features,
        activity_events=cfg.churn.activity_events,
        horizon_days=cfg.churn.horizon_days,
    )
    summary = {**dataset.summary(), "features": len(plan.specs)}
    table = Table(title=f"{_shown(cfg.data.path)}: valid", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:,}" for k, v in value.items())
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), _shown(value))
    for warning in dataset.warnings():
        table.add_row("[yellow]warning[/]", _shown(warning))
    out.print(table)


@app.command()
@_command
def generate(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the tables to.")],
    customers: Annotated[int, typer.Option(help="Number of customers.", min=1)] = 5_000,
    days: Annotated[int, typer.Option(help="Days simulated.", min=60)] = 730,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
    start: Annotated[str, typer.Option(help="First simulated day.")] = "2024-01-01",
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    force: Annotated[
        bool, typer.Option("--force", help="Replace the tables in a folder that is not empty.")
    ] = False,
    campaigns: Annotated[
        int,
        typer.Option(
            help="Run this many monthly randomised retention campaigns (arms and a holdout) "
            "and write treatments and truth_uplift.",
            min=0,
        ),
    ] = 0,
    effects: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of the campaigns' true effects; default: the packaged "
            "src/churnguard/effects.toml."
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="saas: a subscription business; purchases: a retailer's purchase log with "
            "silent dropout (no subscriptions, no campaigns)."
        ),
    ] = "saas",
    horizon_days: Annotated[
        int,
        typer.Option(
            help="purchases: the horizon of the truth's probability of no purchase.", min=1
        ),
    ] = 90,
) -> None:
    """Simulate a business whose churn is known: its tables and a truth table.

    saas: churn is caused by behaviour. With --campaigns, each intervention acts on the problem
    it addresses, disengaged customers barely respond and some calm ones leave when contacted;
    truth_uplift holds every active customer's true churn chance without and with each
    intervention at each campaign. purchases: customers buy at their own rates and drop out
    silently (BG/NBD) with spends around their own means (Gamma-Gamma); truth holds each
    customer's best possible probability of no purchase in --horizon-days, every 7 days.
    Refuses a folder that is not empty unless --force.
    """
    from churnguard.asof import normalize_as_of
    from churnguard.config import load_effects
    from churnguard.retail import generate_purchases
    from churnguard.synth import generate as generate_data

    if kind not in ("saas", "purchases"):
        raise ConfigError(f"--kind must be saas or purchases, got {kind!r}")
    if kind == "purchases" and (campaigns or effects is not None):
        raise ConfigError(
            "--campaigns and --effects simulate a subscription business: --kind saas"
        )
    first = normalize_as_of([start])[0].date()
    began = time.perf_counter()
    stages = logs.Stages()
    stages("generating")
    common = {"customers": customers, "days": days, "seed": seed, "start": first, "fmt": fmt}
    if kind == "purchases":
        summary = generate_purchases(out_dir, **common, horizon_days=horizon_days, force=force)
    else:
        summary = generate_data(
            out_dir,
            **common,
            force=force,
            campaigns=campaigns,
            effects=load_effects(effects) if effects is not None else None,
        )
    stages.rows = summary.events
    stages.done()
    gone = "dropped out" if kind == "purchases" else "churned"
    out.print(
        f"wrote {summary.customers:,} customers, {summary.events:,} events "
        f"({summary.churned:,} {gone}) from {summary.start} to {summary.end} "
        f"to {_shown(summary.out)} in {time.perf_counter() - began:.1f}s"
    )


@app.command()
@_command
def features(
    as_of: Annotated[
        list[str],
        typer.Option("--as-of", help="As-of date (repeatable): features use rows before it."),
    ],
    out_file: Annotated[
        Path,
        typer.Option("--out", "-o", help="Parquet file to write (a folder of parts with Spark)."),
    ],
    config: ConfigOption = None,
    data: DataOption = None,
    engine: EngineOption = None,
) -> None:
    """Build point-in-time features for one or more as-of dates in one pass."""
    from churnguard.asof import normalize_as_of
    from churnguard.feature_files import write_features
    from churnguard.features import plan_features

    cfg = _config(config, **{"data.path": data, "engine.name": engine})
    dates = normalize_as_of(as_of)
    stages = logs.Stages()
    dataset = _load(cfg, stages)
    plan = plan_features(
        dataset,
        config=cfg.features,
        activity_events=cfg.churn.activity_events,
        horizon_days=cfg.churn.horizon_days,
    )
    began = time.perf_counter()
    stages("building features")
    rows = write_features(dataset, out_file, as_of=dates, plan=plan)
    stages.rows = rows
    stages.done()
    out.print(
        f"wrote {rows:,} rows x {len(plan.specs)} features for {len(dates)} as-of date(s) "
        f"to {_shown(out_file)} in {time.perf_counter() - began:.1f}s"
    )


models_app = typer.Typer(
    help="List, inspect, promote and roll back saved models.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(models_app, name="models")


@app.command()
@_command
def train(
    config: ConfigOption = None,
    data: DataOption = None,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Search hyperparameters first (train.tune_trials / tune_seconds), on an inner "
            "split of the training rows.",
        ),
    ] = False,
    engine: EngineOption = None,
    mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow",
            help="Also log the run to MLflow and register its pyfunc (\\[model] mlflow, "
            "tracking_uri); needs churnguard\\[mlflow].",
        ),
    ] = False,
) -> None:
    """Train on the \\[train] snapshots, validate out of time, save model and report.

    The bundle (booster, calibrator, baseline, metadata, report.html) goes to
    REGISTRY/NAME/VERSION/ and NAME/latest points at it. The first model becomes the
    champion (the one scoring uses); a later one stays a challenger unless \\[model]
    auto_promote is on and it beats both the champion and the baseline on the same
    validation rows (or churnguard models promote serves it).
    """
    from churnguard import training

    cfg = _config(
        config, **{"data.path": data, "engine.name": engine, "model.mlflow": mlflow or None}
    )
    with _status("starting") as status:
        run = training.train(cfg, tune_params=tune, progress=status)
    table = _facts_table(f"trained {cfg.model.name} {run.folder.name}")
    where = (
        f"over {len(run.split.train)} snapshots"
        if run.split
        else f"({1 - cfg.train.holdout_fraction:.0%} of the labelled customers)"
    )
    table.add_row("training rows", f"{run.train_rows:,} {where}, {run.train_churn_rate:.1%} churn")
    held_out = (
        f"at {run.split.validation[-1].date()} (out of time)"
        if run.split
        else "(stratified hold-out)"
    )
    metrics = run.evaluation.metrics
    table.add_row(
        "validation rows",
        f"{run.validation_rows:,} {held_out}, {metrics['model']['churn_rate']:.1%} churn",
    )
    _metric_rows(table, run.evaluation)
    if run.tuning:
        table.add_row(
            "tuning",
            f"{run.tuning.trials} trials, inner log loss {run.tuning.default_log_loss:.4f} "
            f"-> {run.tuning.best_log_loss:.4f}",
        )
    for warning in run.warnings:
        table.add_row("[yellow]warning[/]", _shown(warning))
    table.add_row(
        {"first": "champion", "promoted": "promoted", "challenger": "challenger"}[
            run.promotion.status
        ],
        _shown(run.promotion.reason),
    )
    table.add_row("model", _shown(run.folder))
    table.add_row("report", _shown(run.report))
    if run.mlflow_uri:
        table.add_row("MLflow", _shown(run.mlflow_uri))
    out.print(table)


def _facts_table(title: str) -> Table:
    """A two-column summary whose values wrap instead of cutting paths short."""
    table = Table(title=title, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    return table


def _metric_rows(table: Table, ev: Evaluation) -> None:
    """ROC-AUC and calibration of model, baseline and (generated data) the true hazard."""
    for who in ("model", "baseline", "bgnbd", "champion"):
        if who not in ev.metrics:
            continue
        m = ev.metrics[who]
        low, high = ev.intervals.get(who, {}).get("roc_auc_score", (math.nan, math.nan))
        table.add_row(
            f"{who} ROC-AUC / ECE",
            f"{m['roc_auc_score']:.4f} ({low:.4f} to {high:.4f}) / "
            f"{m['expected_calibration_error']:.4f}",
        )
    for other in ("baseline", "bgnbd", "champion"):
        lead = ev.lead(other)
        if lead is not None:
            table.add_row(f"against the {other}", lead)
    if ev.auc_gap is not None:
        table.add_row(
            "true-hazard ROC-AUC",
            f"{ev.metrics['true_hazard']['roc_auc_score']:.4f} (gap {ev.auc_gap:+.4f})",
        )
    size, profit = ev.best_list_size
    low, high = ev.best_list_range
    table.add_row(
        "best list size",
        f"top {low:,} to {high:,} (within 5 % of the best: top {size:,}, profit {profit:,.0f}; "
        f"priced by the {ev.profit_basis})",
    )


@app.command()
@_command
def evaluate(
    as_of: Annotated[str, typer.Option("--as-of", help="As-of date to backtest at.")],
    model: ModelOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for report.html and metrics.json."),
    ] = None,
    engine: EngineOption = None,
    log_file: Annotated[
        Path | None,
        typer.Option("--log", help="Treatment log (churnguard outcomes): measured savings."),
    ] = None,
) -> None:
    """Backtest a saved model: score the customers at --as-of and compare with what happened.

    Uses the churn definition, features and campaign the model was trained with, on the
    config's \\[data] (or --data) and \\[engine] (or --engine). What a benefit-ranked list saves
    is priced with the campaign's assumed success rate (an assumption, with a bootstrap
    interval); --log adds each intervention's saving measured against its holdout.
    """
    from churnguard import training

    cfg = _config(config, **{"data.path": data, "engine.name": engine})
    folder = _model_folder(model, cfg)
    with _status("scoring and evaluating"):
        backtest = training.evaluate(
            folder, cfg.data, as_of=as_of, out=out_dir, engine=cfg.engine, log=log_file
        )
    table = _facts_table(f"{folder.name} at {backtest.as_of.date()}: {backtest.rows:,} customers")
    table.add_row("churn rate", f"{backtest.evaluation.metrics['model']['churn_rate']:.1%}")
    _metric_rows(table, backtest.evaluation)
    ranking = backtest.evaluation.ranking
    if ranking:
        table.add_row(
            "list saves (assumed)",
            f"{ranking['difference']:+,.0f} by benefit over probability "
            f"({ranking['difference_low']:+,.0f} to {ranking['difference_high']:+,.0f}), if "
            f"contacts keep {ranking['success_rate']:.0%} of churners: an assumption",
        )
    measured = backtest.evaluation.measured
    if measured is not None:
        for r in measured.itertuples():
            table.add_row(
                f"measured: {_shown(r.intervention)}",
                "not measured"
                if not (r.treated and r.holdout)
                else f"{r.saving:+.1%} churn ({r.saving_low:+.1%} to {r.saving_high:+.1%}), "
                f"{r.treated:,} treated, {r.holdout:,} held out",
            )
    for warning in backtest.warnings:
        table.add_row("[yellow]warning[/]", _shown(warning))
    if backtest.report:
        table.add_row("report", _shown(backtest.report))
    out.print(table)


@app.command("backtest")
@_command
def backtest(
    start: Annotated[str, typer.Option("--from", help="The first origin (as-of date).")],
    end: Annotated[str, typer.Option("--to", help="The last origin, at the latest.")],
    every_days: Annotated[int, typer.Option(help="Days between origins.", min=1)],
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for backtest.json and report.html."),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Rolling-origin backtest: retrain at each origin on what was known then, and compare.

    At each origin from --from to --to every --every-days days, a model is trained as
    churnguard train would have trained it then (the \\[train] snapshots from \\[train] start,
    the last a purge before the origin), scores the customers at the origin and meets what
    happened over the horizon. Prints ROC-AUC with its 95 % interval, calibration error and
    lift at 10 % per origin and overall, beside the logistic baseline; backtest.json and
    report.html (--out) add PR-AUC, every interval and BG/NBD when the data has events.
    Nothing is written unless every origin is done.
    """
    from churnguard.backtest import backtest as run_backtest

    cfg = _config(config, **{"data.path": data, "engine.name": engine})
    with _status("starting") as status:
        run = run_backtest(
            cfg, start=start, end=end, every_days=every_days, out=out_dir, progress=status
        )
    table = Table(
        title=f"backtest: {len(run.origins)} origins (lift: in the top 10 %; verdict: the "
        "model against the baseline)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("origin", no_wrap=True)
    for column in ("rows", "churn", "ROC-AUC (95 %)", "baseline", "ECE", "lift"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    rows = [(o.as_of.date().isoformat(), o.evaluation) for o in run.origins]
    for label, ev in [*rows, ("overall", run.overall)]:
        model, low, high = (
            ev.metrics["model"]["roc_auc_score"],
            *ev.intervals.get("model", {}).get("roc_auc_score", (math.nan, math.nan)),
        )
        table.add_row(
            label,
            f"{ev.y_true.size:,}",
            f"{ev.y_true.mean():.1%}",
            f"{model:.3f} ({low:.3f}–{high:.3f})",
            f"{ev.metrics['baseline']['roc_auc_score']:.3f}",
            f"{ev.metrics['model']['expected_calibration_error']:.3f}",
            f"{ev.metrics['model']['lift_top_10pct']:.2f}",
            ev.against.get("baseline", ""),
        )
    out.print(table)
    for label, path in run.files.items():
        out.print(f"{label}: {_shown(path)}")


def _model_folder(model: str | None, cfg: PipelineConfig) -> Path:
    """``--model``: a bundle folder (a path, with a ``/``), or a version of the config's model."""
    from churnguard.registry import find_model

    return find_model(model, cfg.model)


@models_app.command("list")
@_command
def models_list(config: ConfigOption = None) -> None:
    """Saved versions of the config's model, oldest first, each verified: the champion (the
    one scoring uses), former champions, challengers (newer, never served) and latest."""
    from churnguard.registry import champion, list_versions, promotions, read_metadata, resolve

    cfg = _config(config)
    registry, name = cfg.model.registry, cfg.model.name
    versions = list_versions(registry, name)
    if not versions:
        out.print(f"no saved versions of {name} in {_shown(registry)}")
        return
    latest, serving = resolve(registry, name).name, champion(registry, name)
    served = {p.version for p in promotions(registry, name)}
    table = Table("version", "ROC-AUC", "validation", "role", "latest")
    for version in versions:
        role = (
            "champion"
            if version == serving
            else "former champion"
            if version in served
            else "challenger"
            if serving is not None and version > serving
            else ""
        )
        mark = "*" if version == latest else ""
        try:
            meta = read_metadata(registry / name / version)
        except ChurnguardError as exc:  # list the others; this one says why it cannot load
            table.add_row(version, "[red]damaged[/]", _shown(exc), role, mark)
            continue
        auc = meta.get("metrics", {}).get("model", {}).get("roc_auc_score")
        table.add_row(
            version,
            "" if not isinstance(auc, float) else f"{auc:.4f}",
            _shown(", ".join(map(str, meta.get("validation_snapshots", [])))),
            role,
            mark,
        )
    out.print(table)


@models_app.command("show")
@_command
def models_show(
    version: Annotated[
        str | None,
        typer.Argument(help="A version, champion or latest; default \\[model] version."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Verify a saved model's files and print its metadata."""
    from churnguard.registry import read_metadata

    cfg = _config(config)
    meta = read_metadata(_model_folder(version, cfg))
    meta["features"] = [f["name"] for f in meta["features"]]
    out.print_json(data=meta)


ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why, for the promotions log (promotions.jsonl).")
]


@models_app.command("promote")
@_command
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to serve (or latest).")],
    config: ConfigOption = None,
    reason: ReasonOption = "promoted by hand",
) -> None:
    """Make a version the champion, the model scoring uses, after verifying its files.

    Recorded with who, when and why in REGISTRY/NAME/promotions.jsonl. Exit 3 when the
    version is missing or damaged.
    """
    from churnguard.registry import promote

    cfg = _config(config)
    done = promote(cfg.model.registry, cfg.model.name, version, reason=reason)
    if done is None:
        out.print(f"{_shown(version)} is already the champion")
    else:
        out.print(f"champion: {_shown(done.version)} (was {_shown(done.previous)})")


@models_app.command("rollback")
@_command
def models_rollback(config: ConfigOption = None, reason: ReasonOption = "rolled back") -> None:
    """Serve the previous champion again (twice goes back two), after verifying its files.

    Exit 3 when there is no earlier champion or it is damaged.
    """
    from churnguard.registry import rollback

    cfg = _config(config)
    done = rollback(cfg.model.registry, cfg.model.name, reason=reason)
    out.print(f"champion: {_shown(done.version)} (was {_shown(done.previous)})")


@models_app.command("history")
@_command
def models_history(config: ConfigOption = None) -> None:
    """Every change of champion, oldest first: when, which version, who and why."""
    from churnguard.registry import promotions

    cfg = _config(config)
    table = Table("at", "champion", "was", "action", "by", "reason")
    for p in promotions(cfg.model.registry, cfg.model.name):
        table.add_row(
            *(_shown(v) for v in (p.at, p.version, p.previous or "", p.action)),
            _shown(p.by),
            _shown(p.reason),
        )
    out.print(table)


@app.command()
@_command
def score(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Score the customers as of this date; a model of a churn flag (labels) "
            "scores as of today without it.",
        ),
    ] = None,
    config: ConfigOption = None,
    data: DataOption = None,
    model: ModelOption = None,
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", help="Out folder ({as_of} is filled in); default \\[score] out."
        ),
    ] = None,
    features_file: Annotated[
        Path | None,
        typer.Option("--features", help="Precomputed features (churnguard features) to use."),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Score every customer in the population and write the ranked intervention list.

    Writes to the out folder:
    interventions.csv, the customers to contact;
    assignments.csv, every decision, treated or held out at random (\\[score] holdout);
    scores.parquet and manifest.json.
    Exit codes: 0 done, 2 bad input, 3 model problem (hashes, schema), 1 anything else.
    """
    from churnguard import scoring

    cfg = _config(config, **{"data.path": data, "engine.name": engine})
    bundle = _model_folder(model, cfg)
    with _status("starting") as status:
        run = scoring.score(
            cfg, as_of=as_of, out=out_dir, model=bundle, features=features_file, progress=status
        )
    _print_score(run)


def _print_score(run: ScoreRun) -> None:
    m = run.manifest
    table = _facts_table(f"scored {m['rows']['scored']:,} customers as of {m['as_of']}")
    tiers = ", ".join(f"{tier} {count:,}" for tier, count in m["risk_tiers"].items())
    table.add_row("risk tiers", tiers)
    table.add_row("value at risk", f"{m['value_at_risk_total']:,.0f}")
    table.add_row(
        "listed",
        f"{m['rows']['listed']:,} customers, expected benefit {m['expected_benefit_total']:,.0f}",
    )
    table.add_row("held out", f"{m['rows']['held_out']:,} customers ({m['holdout']:.0%})")
    if m["drift"]["score"] is not None:
        table.add_row("score drift (PSI)", f"{m['drift']['score']:.3f}")
    for warning in m["warnings"]:
        table.add_row("[yellow]warning[/]", _shown(warning))
    table.add_row("model", _shown(f"{m['model']['name']} {m['model']['version']}"))
    for name, path in run.files.items():
        table.add_row(name, _shown(path))
    out.print(table)
    if not run.interventions.empty:
        # why this intervention: the problem it answers, or for one meant for anyone the
        # customer's first reason
        top = Table("rank", "customer", "churn", "value at risk", "intervention", "why")
        for row in run.interventions.head(5).itertuples():
            answers = row.answers if isinstance(row.answers, str) and row.answers else ""
            top.add_row(
                str(row.rank),
                _shown(row.customer_id),
                f"{row.churn_probability:.0%}",
                f"{row.value_at_risk:,.0f}",
                _shown(row.intervention),
                _shown(answers or row.reason_1),
            )
        out.print(top)


@app.command()
@_command
def outcomes(
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="Treatment log to write (Parquet).")
    ],
    config: ConfigOption = None,
    data: DataOption = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            help="Folder of nightly runs: every assignments.csv under it is read; default: "
            "the data's treatments table."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Count decisions whose horizon ended by this date; default: the data's end."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model whose churn definition labels them; default \\[model] version.",
        ),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Label past decisions (treated and holdout) and measure what each intervention saved.

    Writes the treatment log: every decision whose horizon has ended, with churned. Prints,
    per intervention, treated and holdout counts, churn in each and the churn saved with a
    95 % interval; and per past list, predicted against realised churn by risk tier.
    """
    from churnguard.asof import one_as_of
    from churnguard.treatment_log import outcomes as label_outcomes

    cfg = _config(config, **{"data.path": data, "engine.name": engine})
    last = one_as_of(until).date() if until is not None else None
    with _status("labelling decisions"):
        result = label_outcomes(cfg, out=out_file, scores=scores, until=last, model=model)
    _print_outcomes(result)


def _print_outcomes(result: Outcomes) -> None:
    churn = result.churn
    source = "the config" if result.churn_source == "config" else result.churn_source
    facts = _facts_table(f"{len(result.log):,} decisions labelled up to {result.until}")
    facts.add_row(
        "churn", _shown(f"{churn.definition}, {churn.horizon_days}-day horizon (from {source})")
    )
    facts.add_row("pending", f"{result.pending:,} (horizon not ended)")
    facts.add_row("unlabelled", f"{result.unlabelled:,} (not in the population at their date)")
    facts.add_row("treatment log", _shown(result.path))
    out.print(facts)
    table = Table(title="churn saved by each intervention (holdout minus treated)")
    for header in ("intervention", "treated", "holdout", "churn treated", "churn holdout"):
        table.add_column(header, justify="left" if header == "intervention" else "right")
    table.add_column("saved (95 % interval)", justify="right")
    for row in result.effects.itertuples():
        measured = row.treated and row.holdout
        table.add_row(
            _shown(row.intervention),
            f"{row.treated:,}",
            f"{row.holdout:,}",
            f"{row.churn_treated:.1%}" if row.treated else "-",
            f"{row.churn_holdout:.1%}" if row.holdout else "-",
            f"{row.saving:+.1%} ({row.saving_low:+.1%} to {row.saving_high:+.1%})"
            if measured
            else "not measured (no holdout)"
            if row.treated
            else "not measured (none treated)",
        )
    out.print(table)
    if result.calibration.empty:
        out.print("no scored holdout rows: nothing to compare the lists' risk with")
        return
    tiers = Table(
        "list date",
        "risk tier",
        "holdout",
        "predicted",
        "realised",
        title="is the list still right?",
    )
    for row in result.calibration.itertuples():
        tiers.add_row(
            str(row.as_of),
            row.risk_tier,
            f"{row.customers:,}",
            f"{row.predicted:.1%}",
            f"{row.realised:.1%}",
        )
    out.print(tiers)


@app.command()
@_command
def uplift(
    log_file: Annotated[
        Path, typer.Option("--log", help="Treatment log written by churnguard outcomes.")
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for effects.json, effects.csv, qini.png, report.html."
        ),
    ],
    config: ConfigOption = None,
    data: DataOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model whose probabilities band the customers."),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Learn what each intervention does, for whom, from treated and holdout outcomes.

    Per intervention and problem: the change in the odds of churning when treated, combined
    with the catalogue's assumed change as far as the campaigns bear it out (\\[uplift] prior =
    "catalogue"; "none": the evidence alone, help shown at a 5 % false discovery rate); per
    churn-probability band, the churn saved with a 95 % interval.
    The policy these effects give is checked on every decision, each run of list dates with
    effects learned from the others, against today's list and against contacting no one
    (doubly robust); promote is true only when it beats both at one-sided 95 % confidence.
    Use the effects with \\[score] effects = "learned" and effects_path.
    """
    from churnguard.uplift import learn_uplift

    cfg = _config(config, **{"data.path": data, "engine.name": engine})
    with _status("learning effects"):
        run = learn_uplift(cfg, log=log_file, out=out_dir, model=model)
    _print_uplift(run)


def _print_uplift(run: UpliftRun) -> None:
    effects, ev = run.effects, run.effects.evaluation
    facts = _facts_table(f"effects learned: {'promote' if effects.promote else 'do not promote'}")
    for key, label in (
        ("learned_vs_current", "learned minus today's list"),
        ("learned_vs_none", "learned minus no contact"),
    ):
        c = ev[key]
        facts.add_row(
            label,
            "n/a"
            if c["per_decision"] is None
            else f"{c['per_decision']:+,.2f} a decision ({c['low']:+,.2f} to {c['high']:+,.2f}), "
            f"{ev['decisions']:,} decisions of {ev['dates'][0]} to {ev['dates'][-1]}",
        )
    helped = effects.groups[effects.groups["shown"]]
    facts.add_row(
        "shown to help",
        ", ".join(
            f"{_shown(r.intervention)} ({'with' if r.problem else 'without'} its problem)"
            for r in helped.itertuples()
        )
        or f"nothing, of {len(effects.groups):,} intervention and problem groups",
    )
    for name, path in run.files.items():
        facts.add_row(name, _shown(path))
    out.print(facts)
    table = Table(title="churn saved per intervention (holdout minus treated)")
    for header in ("intervention", "treated", "holdout", "saved (95 % interval)", "pays from"):
        table.add_column(header, justify="left" if header == "intervention" else "right")
    table.add_column("to tell, a group", justify="right")
    for r in effects.pooled.itertuples():
        have = min(r.treated, r.holdout)
        need = (
            ""
            if r.needed_per_group != r.needed_per_group or r.needed_per_group is None
            else (
                f"{int(r.needed_per_group):,}"
                + (
                    f" ({int(r.needed_per_group) - have:,} more)"
                    if r.needed_per_group > have
                    else ""
                )
            )
        )
        table.add_row(
            _shown(r.intervention),
            f"{r.treated:,}",
            f"{r.holdout:,}",
            "-" if r.saving != r.saving else f"{r.saving:+.1%} ({r.low:+.1%} to {r.high:+.1%})",
            "-" if r.break_even != r.break_even else f"{r.break_even:.1%}",
            need,
        )
    out.print(table)


@app.command()
@_command
def kpis(
    start: Annotated[str, typer.Option("--from", help="First day of the period.")],
    end: Annotated[str, typer.Option("--to", help="Day after the period (exclusive).")],
    config: ConfigOption = None,
    data: DataOption = None,
    freq: Annotated[str, typer.Option(help="Breakdown: month or quarter.")] = "month",
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for kpis.csv/json and cohorts.")
    ] = None,
) -> None:
    """Retention KPIs for a period and per month or quarter, plus cohort retention."""
    from churnguard.kpis import retention_report, write_kpis

    cfg = _config(config, **{"data.path": data})
    stages = logs.Stages()
    dataset = _load(cfg, stages)
    stages("computing KPIs")
    report, cohorts = retention_report(dataset, start=start, end=end, churn=cfg.churn, freq=freq)  # type: ignore[arg-type]
    files = write_kpis(report, cohorts, out_dir) if out_dir else {}
    stages.done()
    _print_kpis(report)
    for name, path in files.items():
        out.print(f"wrote {name}: {_shown(path)}", highlight=False)


_KPI_HEADERS = ("churn %", "retention %", "repeat %", "CLV", "NPS", "CSAT %", "MRR")


def _print_kpis(report: KpiReport) -> None:
    from churnguard.kpis import KPI_NAMES

    table = Table(title=f"KPIs {report.total.start} to {report.total.end}")
    table.add_column("period", no_wrap=True)
    for header in _KPI_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    for number, (label, period) in enumerate(report.labelled()):
        cells = [
            "n/a" if period.values[name] is None else f"{period.values[name]:,.{digits}f}"
            for name, digits in zip(KPI_NAMES, (1, 1, 1, 0, 1, 1, 0), strict=True)
        ]
        table.add_row("whole period" if number == 0 else label, *cells)  # the title dates it
    out.print(table)
    for name, reason in report.total.unavailable.items():
        out.print(f"{name.replace('_', ' ')} unavailable: {_shown(reason)}", highlight=False)


@app.command()
@_command
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for everything written.")
    ] = Path("demo"),
    customers: Annotated[int, typer.Option(help="Customers to simulate.", min=100)] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """The whole flow on simulated data: generate, validate, train, evaluate, score, outcomes,
    uplift, KPIs.

    The simulated business ran six randomised retention campaigns; the outcomes and uplift steps
    measure them and learn from them. Everything goes under --out: data/, models/ (with the
    report), evaluation/, scores/DATE/, treatment_log.parquet, effects/ and kpis/. The
    closing line gives the command that scores the same data with the same model from
    pipelines/nightly.toml.
    """
    from churnguard.demo import run_demo

    began = time.perf_counter()
    with _status("generating") as status:
        result = run_demo(out_dir, customers=customers, seed=seed, step=_step, busy=status)
    _print_kpis(result.kpis)
    _print_score(result.scored)
    out.print(
        f"done in {time.perf_counter() - began:.0f}s; files: {len(result.kpi_files)} KPI files, "
        f"the model in {_shown(result.trained.folder)}. Next: {_shown(result.next_command)}",
        highlight=False,
    )


def _step(number: int, name: str, text: str, where: Path | None = None) -> None:
    arrow = f" -> {where}" if where else ""
    out.print(f"[bold]{number}. {name}[/] {_shown(text)}{_shown(arrow)}", highlight=False)
