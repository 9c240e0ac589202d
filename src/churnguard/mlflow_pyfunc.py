"""The churn model as an MLflow pyfunc, logged from code by :mod:`churnguard.tracking`.

MLflow runs this file to load the model, which then reads the bundle's text files through
:func:`churnguard.registry.load_model` (hashes and signature checked): nothing is unpickled.
``predict`` takes a features DataFrame, as ``churnguard features`` or
:func:`churnguard.build_features` give it, and returns each row's churn probability.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from churnguard.registry import load_model

#: The name of the bundle among the logged model's artifacts.
BUNDLE = "bundle"


class ChurnPyfunc(PythonModel):
    """Churn probability of each row of a features DataFrame."""

    def load_context(self, context: Any) -> None:
        self._model, self.metadata = load_model(context.artifacts[BUNDLE])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[float]:
        return self._model.churn_probability(model_input).tolist()


mlflow.models.set_model(ChurnPyfunc())
