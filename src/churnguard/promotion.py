"""Whether a newly trained model should replace the one in service (the registry's champion).

A new model is promoted automatically only when, on the same validation rows, the whole 95 %
paired-bootstrap interval of its ROC-AUC lead is above zero over both the champion and the
logistic baseline. A retrained model that is merely level with the champion stays a
challenger: swapping level models moves every customer's score for no measured gain. The
champion is judged on the new model's validation rows, so when it was trained on later data
than the new model its figures can only be flattered, never the challenger's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from churnguard.config import PipelineConfig, config_from_dict
from churnguard.errors import ModelRegistryError
from churnguard.evaluation import Evaluation
from churnguard.features import FeatureSpec
from churnguard.io import printable
from churnguard.registry import CHAMPION, check_schema, find_model, load_model


@dataclass(frozen=True)
class Champion:
    """The model in service, scored on the new model's validation rows when comparable."""

    #: None before any model is saved.
    version: str | None
    #: Its churn probability on the validation rows; None when it cannot be compared.
    probability: np.ndarray | None = None
    #: Why it cannot be compared.
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """What training does with the new model, and the reason the summary and metadata give."""

    status: Literal["first", "promoted", "challenger"]
    reason: str

    @property
    def promote(self) -> bool:
        return self.status == "promoted"


def champion_on(
    config: PipelineConfig, rows: pd.DataFrame, available: list[FeatureSpec]
) -> Champion:
    """Score ``rows`` with the champion of ``config``'s model, if it predicts the same churn
    definition from features the rows hold and its bundle verifies."""
    try:
        folder = find_model(CHAMPION, config.model)
    except ModelRegistryError:
        return Champion(None)
    version = folder.name
    try:
        model, metadata = load_model(folder)
        check_schema(model, available, where=str(folder))
    except ModelRegistryError as exc:
        return Champion(version, note=printable(exc))
    trained = config_from_dict(metadata["config"], source=f"{folder}/metadata.json")
    if trained.churn != config.churn:
        return Champion(version, note="it was trained for another [churn] definition")
    return Champion(version, model.churn_probability(rows))


def decide(evaluation: Evaluation, champion: Champion, *, auto: bool) -> Decision:
    """Promote, keep as a challenger, or (no champion yet) serve as the first model."""
    if champion.version is None:
        return Decision("first", "the first model saved: it becomes the champion")
    if champion.probability is None:
        return Decision(
            "challenger", f"not compared with champion {champion.version}: {champion.note}"
        )
    leads = {other: evaluation.lead(other) for other in ("champion", "baseline")}
    if any(lead is None for lead in leads.values()):
        return Decision("challenger", "no interval: the validation rows hold one class")
    names = {"champion": f"champion {champion.version}", "baseline": "the baseline"}
    described = {other: f"against {names[other]}, {lead}" for other, lead in leads.items()}
    if not auto:
        return Decision(
            "challenger",
            f"[model] auto_promote is off ({described['champion']}); "
            "churnguard models promote serves it",
        )
    failed = [text for other, text in described.items() if evaluation.against[other] != "better"]
    if failed:
        return Decision("challenger", "not better beyond the interval: " + "; ".join(failed))
    return Decision("promoted", "; ".join(described.values()) + ", on the same rows")
