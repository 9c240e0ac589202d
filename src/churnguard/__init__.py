"""churnguard: churn prediction from behavioural data.

Behavioural tables go in (see :mod:`churnguard.contract`), point-in-time features come out
(:mod:`churnguard.features`), labelled by one of three churn definitions
(:mod:`churnguard.labels`); :func:`train` fits, evaluates and saves a model
(:mod:`churnguard.training`), :func:`evaluate` backtests a saved one, and :func:`score`
writes the nightly intervention list (:mod:`churnguard.scoring`); :func:`outcomes` labels past
decisions and measures what each intervention saved against its holdout.
"""

import importlib
from typing import TYPE_CHECKING, Any

from churnguard.config import PipelineConfig, load_config
from churnguard.errors import (
    ChurnguardError,
    ConfigError,
    DataContractError,
    LeakageError,
    ModelRegistryError,
)

#: Where each name of the API lives; modules are imported on first use, so that importing
#: churnguard (and the command line's --help) does not load DuckDB, Ibis and LightGBM.
_LAZY = {
    "Dataset": "churnguard.contract",
    "load_dataset": "churnguard.contract",
    "build_training_set": "churnguard.dataset",
    "training_frames": "churnguard.dataset",
    "FeatureSpec": "churnguard.features",
    "build_features": "churnguard.features",
    "plan_features": "churnguard.features",
    "cohort_retention": "churnguard.kpis",
    "compute_kpis": "churnguard.kpis",
    "build_labels": "churnguard.labels",
    "run_demo": "churnguard.demo",
    "load_model": "churnguard.registry",
    "promote": "churnguard.registry",
    "rollback": "churnguard.registry",
    "outcomes": "churnguard.treatment_log",
    "score": "churnguard.scoring",
    "generate": "churnguard.synth",
    "evaluate": "churnguard.training",
    "train": "churnguard.training",
}

if TYPE_CHECKING:
    from churnguard.contract import Dataset, load_dataset
    from churnguard.dataset import build_training_set, training_frames
    from churnguard.demo import run_demo
    from churnguard.features import FeatureSpec, build_features, plan_features
    from churnguard.kpis import cohort_retention, compute_kpis
    from churnguard.labels import build_labels
    from churnguard.registry import load_model, promote, rollback
    from churnguard.scoring import score
    from churnguard.synth import generate
    from churnguard.training import evaluate, train
    from churnguard.treatment_log import outcomes


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'churnguard' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ChurnguardError",
    "ConfigError",
    "DataContractError",
    "Dataset",
    "FeatureSpec",
    "LeakageError",
    "ModelRegistryError",
    "PipelineConfig",
    "build_features",
    "build_labels",
    "build_training_set",
    "cohort_retention",
    "compute_kpis",
    "evaluate",
    "load_model",
    "outcomes",
    "train",
    "plan_features",
    "promote",
    "rollback",
    "score",
    "training_frames",
    "generate",
    "load_config",
    "load_dataset",
    "run_demo",
]

__version__ = "0.1.0"
