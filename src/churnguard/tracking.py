"""Log a trained model to MLflow: its parameters, metrics and report, and a registered pyfunc
that scores a features DataFrame. Optional: ``pip install 'churnguard[mlflow]'``.

Training calls :func:`log_training` when ``[model] mlflow`` is on (or ``churnguard train
--mlflow``), after the bundle is saved, so MLflow holds a copy of the exact bundle the registry
verifies. The pyfunc is logged from code (:mod:`churnguard.mlflow_pyfunc`), never pickled.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import warnings
from importlib.metadata import version as package_version
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from churnguard.config import PipelineConfig
from churnguard.errors import ConfigError
from churnguard.evaluation import Evaluation
from churnguard.registry import read_metadata

log = logging.getLogger(__name__)


def log_training(
    config: PipelineConfig,
    folder: Path,
    evaluation: Evaluation,
    *,
    tags: dict[str, str],
) -> str:
    """Log the model saved in ``folder`` as one MLflow run of experiment ``churnguard-<name>``
    and register its pyfunc as model ``<name>``; return the registered model's URI.

    Raises
    ------
    ConfigError
        MLflow is not installed.
    """
    require_mlflow()
    import mlflow
    from mlflow.utils.logging_utils import disable_logging, enable_logging

    from churnguard.mlflow_pyfunc import BUNDLE

    # MLflow's warnings join churnguard's log (JSON lines stay JSON); its chatter, printed
    # past any logger, is silenced while it works, and churnguard says what was registered
    mlflow_log = logging.getLogger("mlflow")
    mlflow_log.handlers.clear()
    mlflow_log.propagate = True
    mlflow_log.setLevel(logging.WARNING)
    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true" if sys.stderr.isatty() else "false"
    )
    disable_logging()
    try:
        with warnings.catch_warnings():  # the signature comes from the bundle's schema
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            uri = _log(mlflow, config, folder, evaluation, tags, bundle=BUNDLE)
    finally:
        enable_logging()
    log.info("registered %s in MLflow", uri)
    return uri


def _log(
    mlflow: Any,
    config: PipelineConfig,
    folder: Path,
    evaluation: Evaluation,
    tags: dict[str, str],
    *,
    bundle: str,
) -> str:
    if config.model.tracking_uri:
        mlflow.set_tracking_uri(config.model.tracking_uri)
    mlflow.set_experiment(f"churnguard-{config.model.name}")
    with mlflow.start_run(run_name=folder.name):
        mlflow.set_tags({"churnguard.model_version": folder.name, **tags})
        mlflow.log_params(_params(config))
        mlflow.log_metrics(_metrics(evaluation))
        mlflow.log_artifact(str(folder / "report.html"))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package_files("churnguard").joinpath("mlflow_pyfunc.py")),
            artifacts={bundle: str(folder)},
            registered_model_name=config.model.name,
            pip_requirements=[f"churnguard=={package_version('churnguard')}"],
            signature=_signature(mlflow, folder),
        )
    return f"models:/{config.model.name}/{info.registered_model_version}"


def _signature(mlflow: Any, folder: Path) -> Any:
    """The pyfunc's input columns (the model's features: numbers or text) and output (one
    probability per row), from the bundle's metadata."""
    from mlflow.types import ColSpec, Schema

    features = read_metadata(folder)["features"]
    inputs = Schema(
        [ColSpec("double" if f["kind"] == "numeric" else "string", f["name"]) for f in features]
    )
    return mlflow.models.ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double")]))


def require_mlflow() -> None:
    """Refuse, in one line, to log to MLflow where it is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(
            "[model] mlflow (or train --mlflow) needs MLflow: pip install 'churnguard[mlflow]'"
        )


def _params(config: PipelineConfig) -> dict[str, Any]:
    """The settings that made the model: churn definition, training grid, features."""
    train, churn = config.train, config.churn
    return {
        "churn.definition": churn.definition,
        "churn.horizon_days": churn.horizon_days,
        "train.as_of": ",".join(train.as_of) or None,
        "train.start": train.start or None,
        "train.end": train.end or None,
        "train.every_days": train.every_days,
        "train.validation_snapshots": train.validation_snapshots,
        "train.purge_days": train.purge_days,
        "train.seed": train.seed,
        "features.windows": ",".join(map(str, config.features.windows)),
        "config_fingerprint": config.fingerprint(),
    }


def _metrics(evaluation: Evaluation) -> dict[str, float]:
    """Every finite figure of model, baseline and champion, e.g. ``model.roc_auc_score``."""
    return {
        f"{who}.{name}": float(value)
        for who, figures in evaluation.metrics.items()
        for name, value in figures.items()
        if isinstance(value, int | float) and math.isfinite(value)
    }
