"""churnguard: churn prediction from behavioural data.

Behavioural tables go in (see :mod:`churnguard.contract`), point-in-time features come out
(:mod:`churnguard.features`), labelled by one of three churn definitions
(:mod:`churnguard.labels`); :func:`train` fits, evaluates and saves a model
(:mod:`churnguard.training`), :func:`evaluate` backtests a saved one, and :func:`score`
writes the nightly intervention list (:mod:`churnguard.scoring`).
"""

from churnguard.config import PipelineConfig, load_config
from churnguard.contract import Dataset, load_dataset
from churnguard.dataset import build_training_set, training_frames
from churnguard.errors import (
    ChurnguardError,
    ConfigError,
    DataContractError,
    LeakageError,
    ModelRegistryError,
)
from churnguard.features import FeatureSpec, build_features, plan_features
from churnguard.kpis import cohort_retention, compute_kpis
from churnguard.labels import build_labels
from churnguard.registry import load_model
from churnguard.scoring import score
from churnguard.synth import generate
from churnguard.training import evaluate, train

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
    "train",
    "plan_features",
    "score",
    "training_frames",
    "generate",
    "load_config",
    "load_dataset",
]

__version__ = "0.1.0"
