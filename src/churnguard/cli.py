"""The ``churnguard`` command line: parse options, load config, call the library, print."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from churnguard.config import PipelineConfig, load_config
from churnguard.contract import Dataset, load_dataset
from churnguard.dataset import training_frames
from churnguard.engine.duckdb import write_features
from churnguard.errors import ChurnguardError
from churnguard.evaluation import classification_metrics
from churnguard.features import normalize_as_of, plan_features
from churnguard.kpis import KPI_NAMES, KpiReport, cohort_retention, compute_kpis, write_kpis
from churnguard.model import fit
from churnguard.registry import list_versions, resolve, save_model, verify
from churnguard.synth import generate as generate_data

app = typer.Typer(
    help="Churn prediction from behavioural data: validate, generate, build features.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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


def _config(config: Path | None, **overrides: object) -> PipelineConfig:
    return load_config(config, overrides)


def _fail(exc: ChurnguardError) -> None:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _load(cfg: PipelineConfig) -> Dataset:
    return load_dataset(cfg.data, definition=cfg.churn.definition, engine=cfg.engine)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """churnguard: point-in-time churn features, models and intervention lists."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def validate(config: ConfigOption = None, data: DataOption = None) -> None:
    """Check a dataset against the data contract and print a summary.

    Exit code 2 and one line naming file, line/row and column on the first problem.
    """
    try:
        cfg = _config(config, **{"data.path": data})
        summary = _load(cfg).summary()
    except ChurnguardError as exc:
        _fail(exc)
    table = Table(title=f"{cfg.data.path}: valid", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:,}" for k, v in value.items())
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the tables to.")],
    customers: Annotated[int, typer.Option(help="Number of customers.", min=1)] = 5_000,
    days: Annotated[int, typer.Option(help="Days simulated.", min=60)] = 730,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
    start: Annotated[str, typer.Option(help="First simulated day.")] = "2024-01-01",
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Simulate a subscription business whose churn is caused by behaviour."""
    try:
        first = normalize_as_of([start])[0].date()
        began = time.perf_counter()
        summary = generate_data(
            out_dir, customers=customers, days=days, seed=seed, start=first, fmt=fmt
        )  # type: ignore[arg-type]
    except ChurnguardError as exc:
        _fail(exc)
    out.print(
        f"wrote {summary.customers:,} customers, {summary.events:,} events "
        f"({summary.churned:,} churned) from {summary.start} to {summary.end} "
        f"to {summary.out} in {time.perf_counter() - began:.1f}s"
    )


@app.command()
def features(
    as_of: Annotated[
        list[str],
        typer.Option("--as-of", help="As-of date (repeatable): features use rows before it."),
    ],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write.")],
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Build point-in-time features for one or more as-of dates in one pass."""
    try:
        cfg = _config(config, **{"data.path": data})
        dates = normalize_as_of(as_of)
        dataset = _load(cfg)
        plan = plan_features(
            dataset, config=cfg.features, activity_events=cfg.churn.activity_events
        )
        began = time.perf_counter()
        rows = write_features(dataset, out_file, as_of=dates, plan=plan, engine=cfg.engine)
    except ChurnguardError as exc:
        _fail(exc)
    out.print(
        f"wrote {rows:,} rows x {len(plan.specs)} features for {len(dates)} as-of date(s) "
        f"to {out_file} in {time.perf_counter() - began:.1f}s"
    )


models_app = typer.Typer(help="List and inspect saved models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command()
def train(config: ConfigOption = None, data: DataOption = None) -> None:
    """Train on the [train] snapshots, validate out of time, save to the [model] registry."""
    try:
        cfg = _config(config, **{"data.path": data})
        with err.status("loading and validating data"):
            dataset = _load(cfg)
            plan = plan_features(
                dataset, config=cfg.features, activity_events=cfg.churn.activity_events
            )
        with err.status("building snapshot features and labels"):
            fit_frame, valid, split = training_frames(
                dataset, train=cfg.train, churn=cfg.churn, features=cfg.features
            )
        with err.status(f"training on {len(fit_frame):,} rows"):
            result = fit(fit_frame, valid, features=list(plan.specs), seed=0)
        metrics = {
            "model": classification_metrics(valid["churned"], result.validation_probability),
            "baseline": classification_metrics(valid["churned"], result.baseline_probability),
        }
        folder = save_model(
            result,
            registry=cfg.model.registry,
            name=cfg.model.name,
            metadata={
                "config": cfg.to_dict(),
                "config_fingerprint": cfg.fingerprint(),
                "data_fingerprint": dataset.fingerprint(),
                "train_snapshots": [d.date().isoformat() for d in split.train],
                "validation_snapshots": [d.date().isoformat() for d in split.validation],
                "purge_days": split.purge_days,
                "reduced_purge": split.reduced_purge,
                "metrics": metrics,
            },
        )
    except ChurnguardError as exc:
        _fail(exc)
    table = Table(title=f"trained {cfg.model.name} {folder.name}", show_header=False)
    table.add_row(
        "training rows",
        f"{len(fit_frame):,} over {len(split.train)} snapshots, "
        f"{fit_frame['churned'].mean():.1%} churn",
    )
    table.add_row(
        "validation rows",
        f"{len(valid):,} at {split.validation[-1].date()}, {valid['churned'].mean():.1%} churn",
    )
    for who in ("model", "baseline"):
        m = metrics[who]
        table.add_row(
            f"{who} ROC-AUC / ECE",
            f"{m['roc_auc_score']:.4f} / {m['expected_calibration_error']:.4f}",
        )
    if split.reduced_purge:
        table.add_row("warning", f"purge of {split.purge_days} days is shorter than the horizon")
    table.add_row("saved to", str(folder))
    out.print(table)


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """Saved versions of the config's model, oldest first; latest is marked."""
    try:
        cfg = _config(config)
        versions = list_versions(cfg.model.registry, cfg.model.name)
        if not versions:
            out.print(f"no saved versions of {cfg.model.name} in {cfg.model.registry}")
            return
        latest = resolve(cfg.model.registry, cfg.model.name).name
    except ChurnguardError as exc:
        _fail(exc)
    table = Table("version", "ROC-AUC", "validation", "latest")
    for version in versions:
        meta = json.loads(
            (cfg.model.registry / cfg.model.name / version / "metadata.json").read_text()
        )
        auc = meta.get("metrics", {}).get("model", {}).get("roc_auc_score")
        table.add_row(
            version,
            "" if auc is None else f"{auc:.4f}",
            ", ".join(meta.get("validation_snapshots", [])),
            "*" if version == latest else "",
        )
    out.print(table)


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="A version, or latest.")] = "latest",
    config: ConfigOption = None,
) -> None:
    """Verify a saved model's files and print its metadata."""
    try:
        cfg = _config(config)
        folder = resolve(cfg.model.registry, cfg.model.name, version)
        verify(folder)
    except ChurnguardError as exc:
        _fail(exc)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["features"] = [f["name"] for f in meta["features"]]
    out.print_json(data=meta)


@app.command()
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
    try:
        cfg = _config(config, **{"data.path": data})
        dataset = _load(cfg)
        report = compute_kpis(dataset, start=start, end=end, churn=cfg.churn, freq=freq)  # type: ignore[arg-type]
        cohorts = None
        if (
            cfg.churn.definition != "labels"
            and "signup_date" in dataset.tables["customers"].columns
        ):
            cohorts = cohort_retention(dataset, churn=cfg.churn, until=end)
        files = write_kpis(report, cohorts, out_dir) if out_dir else {}
    except ChurnguardError as exc:
        _fail(exc)
    _print_kpis(report)
    for name, path in files.items():
        out.print(f"wrote {name}: {path}", highlight=False)


_KPI_HEADERS = ("churn %", "retention %", "repeat %", "CLV", "NPS", "CSAT %", "MRR")


def _print_kpis(report: KpiReport) -> None:
    table = Table(title=f"KPIs {report.total.start} to {report.total.end}")
    table.add_column("period", no_wrap=True)
    for header in _KPI_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    for label, period in report.labelled():
        cells = [
            "n/a" if period.values[name] is None else f"{period.values[name]:,.{digits}f}"
            for name, digits in zip(KPI_NAMES, (1, 1, 1, 0, 1, 1, 0), strict=True)
        ]
        table.add_row(label, *cells)
    out.print(table)
    for name, reason in report.total.unavailable.items():
        out.print(f"{name.replace('_', ' ')} unavailable: {reason}", highlight=False)


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for everything written.")
    ] = Path("demo"),
    customers: Annotated[int, typer.Option(help="Customers to simulate.", min=100)] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Generate demo data, validate it, build point-in-time features and report KPIs."""
    try:
        data_dir = out_dir / "data"
        summary = generate_data(data_dir, customers=customers, days=730, seed=seed)
        out.print(
            f"[bold]1. data[/]      {summary.customers:,} customers, "
            f"{summary.events:,} events -> {data_dir}"
        )
        cfg = _config(None, **{"data.path": data_dir, "churn.definition": "subscription"})
        dataset = _load(cfg)
        out.print(
            f"[bold]2. validate[/]  {sum(t.rows for t in dataset.tables.values()):,} rows "
            "pass the data contract"
        )
        end = dt.datetime.combine(summary.end, dt.time())
        dates = [end - dt.timedelta(days=cfg.churn.horizon_days + 30 * k) for k in range(6)]
        plan = plan_features(dataset, config=cfg.features)
        path = out_dir / "features.parquet"
        rows = write_features(dataset, path, as_of=dates, plan=plan, engine=cfg.engine)
        out.print(
            f"[bold]3. features[/]  {rows:,} rows x {len(plan.specs)} features for "
            f"{len(dates)} monthly as-of dates -> {path}"
        )
        last = dt.date(end.year, end.month, 1)
        report = compute_kpis(
            dataset, start=dt.date(last.year - 1, last.month, 1), end=last, churn=cfg.churn
        )
        cohorts = cohort_retention(dataset, churn=cfg.churn, until=last)
        files = write_kpis(report, cohorts, out_dir / "kpis")
    except ChurnguardError as exc:
        _fail(exc)
    out.print("[bold]4. KPIs[/] over the last 12 months:")
    _print_kpis(report)
    out.print(f"   files: {', '.join(str(p) for p in files.values())}", highlight=False)
