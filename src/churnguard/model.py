"""The churn model: LightGBM with early stopping, calibrated probabilities, and a baseline.

:func:`fit` trains on its training rows and stops early and calibrates on its stopping rows
(``churnguard train`` gives it an inner split of the training snapshots, so the rows it reports
on are never read here). Calibration (sigmoid or isotonic) is chosen by cross-fitting on the
stopping rows: each method is fitted on one half and scored on the other, both ways, and the
method with the lower out-of-fold log loss wins; the final calibrator is then fitted on all of
them. A logistic regression on the same features is trained beside it as the baseline, and
blended into the model's log-odds where the out-of-fold log loss says it clearly helps
(:func:`blend_weight`): where churn is close to additive in the columns, the regression holds
exactly what the trees approximate in steps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from scipy.special import expit, ndtri
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from churnguard.errors import ConfigError
from churnguard.features import FeatureSpec

Method = Literal["sigmoid", "isotonic"]

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "verbose": -1,
}

#: Training rows the logistic baseline is fitted on, at most.
BASELINE_ROWS = 200_000
#: Weights of the logistic baseline tried in the blend, chosen by out-of-fold log loss on the
#: stopping rows (:func:`blend_weight`): where churn is close to additive in the features (an
#: entity table of a telecom) the baseline carries what the trees approximate in steps.
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Calibrator:
    """Maps raw booster scores to probabilities, by Platt scaling or isotonic regression.

    Fitted with scikit-learn, kept as plain numbers (``to_dict``/``from_dict``) so a saved model
    is JSON and never a pickle: ``sigmoid`` holds the slope and intercept on the raw score's
    log-odds, ``isotonic`` the knots of the piecewise-linear curve.
    """

    method: Method
    parameters: dict[str, list[float]] = field(repr=False)
    #: Weight of the logistic baseline's log-odds blended into the calibrated ones (0: none).
    baseline_weight: float = 0.0

    @classmethod
    def fit(cls, method: Method, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        if method == "sigmoid":
            platt = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y)
            parameters = {"coef": [float(platt.coef_[0, 0])], "intercept": [platt.intercept_[0]]}
        else:
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
            parameters = {"x": iso.X_thresholds_, "y": iso.y_thresholds_}
        return cls(method, {k: [float(v) for v in vs] for k, vs in parameters.items()})

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            (coef,), (intercept,) = self.parameters["coef"], self.parameters["intercept"]
            return expit(coef * _logit(raw) + intercept)
        knots_x, knots_y = self.parameters["x"], self.parameters["y"]
        return np.clip(np.interp(raw, knots_x, knots_y), 1e-6, 1 - 1e-6)

    def blend(self, calibrated: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """The calibrated probabilities blended with the baseline's, in log-odds."""
        w = self.baseline_weight
        return expit((1 - w) * _logit(calibrated) + w * _logit(baseline))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "parameters": self.parameters,
            "baseline_weight": self.baseline_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Rebuild a saved calibrator, refusing anything but its own numbers.

        Raises
        ------
        ValueError
            An unknown method, missing or extra parameters, or values that are not finite
            numbers.
        """
        method, parameters = data["method"], data["parameters"]
        (weight,) = _finite_list([data.get("baseline_weight", 0.0)], "baseline_weight")
        if not 0 <= weight < 1:
            raise ValueError(f"baseline_weight {weight} is not in [0, 1)")
        expected = {"sigmoid": {"coef", "intercept"}, "isotonic": {"x", "y"}}
        if method not in expected or set(parameters) != expected[method]:
            raise ValueError(f"unknown calibration {method!r} with {sorted(parameters)}")
        numbers = {k: _finite_list(v, k) for k, v in parameters.items()}
        sizes = {len(v) for v in numbers.values()}
        if len(sizes) != 1 or 0 in sizes or (method == "sigmoid" and sizes != {1}):
            raise ValueError(f"{method} calibration parameters of sizes {sorted(sizes)}")
        if method == "isotonic" and np.any(np.diff(numbers["x"]) < 0):
            raise ValueError("isotonic calibration knots out of order")
        return cls(method, numbers, weight)


@dataclass
class ChurnModel(ClassifierMixin, BaseEstimator):
    """A trained booster, its calibrator and the feature schema it expects; where the
    calibrator blends in the logistic baseline (``baseline_weight``), that baseline too.

    It is a fitted scikit-learn classifier, so the tools data scientists already use take it as
    it is: ``predict_proba(X)`` gives the chances of staying and of churning (classes 0 and 1),
    ``predict(X)`` the likelier class, ``classes_`` and ``feature_names_in_`` are set, and
    ``sklearn.base.is_classifier`` holds. ``X`` is a features DataFrame (``churnguard
    features``), or an array whose columns are ``feature_names_in_``. ``churn_probability``
    gives the churn column alone.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    features: list[FeatureSpec]
    categories: dict[str, list[str]]
    baseline: Baseline | None = None

    #: Class 1 is churn.
    classes_ = np.array([0, 1])

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.array([s.name for s in self.features], dtype=object)

    @property
    def n_features_in_(self) -> int:
        return len(self.features)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of ``frame`` typed as at training (unknown categories → missing)."""
        missing = [s.name for s in self.features if s.name not in frame.columns]
        if missing:
            raise ConfigError(f"the data lacks feature columns the model needs: {missing[:5]}")
        return _typed(frame, self.features, self.categories)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self.matrix(frame))

    def churn_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability for each row of ``frame``."""
        calibrated = self.calibrator.predict(self.raw(frame))
        if not self.calibrator.baseline_weight:
            return calibrated
        if self.baseline is None:
            raise ConfigError("the model blends in its logistic baseline, which is missing")
        return self.calibrator.blend(calibrated, self.baseline.churn_probability(frame))

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:  # noqa: N803
        """Rows × classes ``[0, 1]``: the chance of staying, then of churning."""
        churn = self.churn_probability(self._frame(X))
        return np.column_stack([1 - churn, churn])

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:  # noqa: N803
        """1 where churning is the likelier outcome, else 0."""
        return (self.churn_probability(self._frame(X)) > 0.5).astype(int)

    def _frame(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:  # noqa: N803
        """``X`` as a features DataFrame: an array's columns are ``feature_names_in_``."""
        if isinstance(X, pd.DataFrame):
            return X
        array = np.asarray(X)
        if array.ndim != 2 or array.shape[1] != self.n_features_in_:
            raise ConfigError(
                f"expected {self.n_features_in_} feature columns "
                f"({', '.join(self.feature_names_in_[:3])}, ...), got shape {array.shape}"
            )
        return pd.DataFrame(array, columns=list(self.feature_names_in_))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Per-row, per-feature SHAP contributions to the raw log-odds (columns = features)."""
        return self.booster.predict(self.matrix(frame), pred_contrib=True)[:, :-1]

    def importance(
        self, frame: pd.DataFrame, *, max_rows: int = 20_000, seed: int = 0
    ) -> pd.DataFrame:
        """Each feature's share of the total split gain and its mean |SHAP| on ``frame``.

        Gain says what the trees used; mean |SHAP| says what moved these customers' scores.
        Rows beyond ``max_rows`` are sampled (seeded) to bound the cost. Largest |SHAP| first.
        """
        rows = frame if len(frame) <= max_rows else frame.sample(max_rows, random_state=seed)
        gain = self.booster.feature_importance(importance_type="gain")
        table = pd.DataFrame(
            {
                "feature": [s.name for s in self.features],
                "description": [s.description for s in self.features],
                "gain_share": gain / gain.sum() if gain.sum() else gain,
                "mean_abs_shap": np.abs(self.contributions(rows)).mean(axis=0),
            }
        )
        return table.sort_values(
            ["mean_abs_shap", "feature"], ascending=[False, True]
        ).reset_index(drop=True)


@dataclass
class TrainResult:
    """What :func:`fit` produced: the model, the baseline and the validation predictions
    (out-of-fold for the calibration; early stopping saw the same rows)."""

    model: ChurnModel
    baseline: Baseline
    validation_probability: np.ndarray
    baseline_probability: np.ndarray
    calibration_log_loss: dict[str, float]
    best_iteration: int
    #: Out-of-fold log loss on the stopping rows of each weight of the baseline in the blend
    #: (the weight chosen is the least within one standard error of the best).
    blend_log_loss: dict[float, float] = field(default_factory=dict)


def fit(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: list[FeatureSpec],
    seed: int = 0,
    params: dict[str, object] | None = None,
    max_rounds: int = 2000,
) -> TrainResult:
    """Train on ``train``; stop early and calibrate on ``valid``; both carry ``churned``."""
    for name, frame in (("training", train), ("validation", valid)):
        if frame["churned"].nunique() < 2:
            raise ConfigError(f"the {name} set has only one class; add snapshots or customers")
    categories = _categories(train, features)
    x_train, x_valid = (_typed(f, features, categories) for f in (train, valid))
    y_train, y_valid = train["churned"].to_numpy(), valid["churned"].to_numpy()
    booster = _boost(x_train, y_train, x_valid, y_valid, params, seed, max_rounds)
    raw = booster.predict(x_valid, num_iteration=booster.best_iteration)
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    out_of_fold: dict[Method, np.ndarray] = {}
    for method in ("sigmoid", "isotonic"):
        probability = np.empty_like(raw)
        for fit_rows, score_rows in folds.split(raw, y_valid):
            calibrator = Calibrator.fit(method, raw[fit_rows], y_valid[fit_rows])
            probability[score_rows] = calibrator.predict(raw[score_rows])
        out_of_fold[method] = probability
    losses = {m: float(log_loss(y_valid, p, labels=[0, 1])) for m, p in out_of_fold.items()}
    chosen: Method = min(losses, key=losses.get)  # type: ignore[arg-type]
    # A linear baseline gains nothing from millions of rows; a seeded sample bounds its cost.
    sample = (
        train if len(train) <= BASELINE_ROWS else train.sample(BASELINE_ROWS, random_state=seed)
    )
    baseline = Baseline.fit(sample, sample["churned"].to_numpy(), features=features)
    baseline_probability = baseline.churn_probability(valid)
    calibrator = Calibrator.fit(chosen, raw, y_valid)
    weight, blends = blend_weight(calibrator, out_of_fold[chosen], baseline_probability, y_valid)
    calibrator = dataclasses.replace(calibrator, baseline_weight=weight)
    model = ChurnModel(
        booster=booster,
        calibrator=calibrator,
        features=list(features),
        categories=categories,
        baseline=baseline if weight else None,
    )
    return TrainResult(
        model=model,
        baseline=baseline,
        validation_probability=calibrator.blend(out_of_fold[chosen], baseline_probability),
        baseline_probability=baseline_probability,
        calibration_log_loss=losses,
        best_iteration=int(booster.best_iteration),
        blend_log_loss=blends,
    )


def blend_weight(
    calibrator: Calibrator, calibrated: np.ndarray, baseline: np.ndarray, y: np.ndarray
) -> tuple[float, dict[float, float]]:
    """The baseline's weight in the blend, and the mean log loss of each weight tried.

    The least weight whose log loss is within one standard error of the best one's (the
    paired per-row difference): the baseline comes in only where it clearly helps, since a
    small gain in log loss on the stopping rows can cost ranking elsewhere."""
    p = {
        w: dataclasses.replace(calibrator, baseline_weight=w).blend(calibrated, baseline)
        for w in BLEND_WEIGHTS
    }
    eps = 1e-15
    losses = {
        w: -(y * np.log(np.clip(q, eps, 1)) + (1 - y) * np.log(np.clip(1 - q, eps, 1)))
        for w, q in p.items()
    }
    means = {w: float(loss.mean()) for w, loss in losses.items()}
    best = min(means, key=means.get)  # type: ignore[arg-type]
    for w in BLEND_WEIGHTS:
        difference = losses[w] - losses[best]
        if difference.mean() <= difference.std(ddof=1) / np.sqrt(difference.size):
            return w, means
    return best, means


@dataclass(frozen=True)
class Tuning:
    """Outcome of :func:`tune`: the best parameters and how they compare with the defaults."""

    params: dict[str, object]
    trials: int
    seconds: float
    default_log_loss: float
    best_log_loss: float


def tune(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: list[FeatureSpec],
    seed: int = 0,
    trials: int = 30,
    seconds: float = 300,
    on_trial: Callable[[int, float], None] | None = None,
) -> Tuning:
    """Search LightGBM parameters (Optuna TPE) for the lowest log loss of ``valid``.

    Pass an inner split of the training data, never the evaluation set: the caller holds the
    evaluation set out so the search does not flatter the reported metrics. The first trial is
    :data:`DEFAULT_PARAMS`, so the result is never worse than the defaults on ``valid``.
    ``on_trial(done, best)`` is called after each trial.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    categories = _categories(train, features)
    x_train, x_valid = (_typed(f, features, categories) for f in (train, valid))
    y_train, y_valid = train["churned"].to_numpy(), valid["churned"].to_numpy()

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 1000, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }
        booster = _boost(x_train, y_train, x_valid, y_valid, params, seed, 2000)
        return float(booster.best_score["valid_0"]["binary_logloss"])

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(len(study.trials), study.best_value)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: DEFAULT_PARAMS[k] for k in _SEARCHED})
    began = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=seconds, callbacks=[report])
    return Tuning(
        params=dict(study.best_params),
        trials=len(study.trials),
        seconds=time.perf_counter() - began,
        default_log_loss=float(study.trials[0].value),
        best_log_loss=float(study.best_value),
    )


_SEARCHED = (
    "learning_rate",
    "num_leaves",
    "min_data_in_leaf",
    "feature_fraction",
    "bagging_fraction",
    "lambda_l2",
)


def _boost(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    params: dict[str, object] | None,
    seed: int,
    max_rounds: int,
) -> lgb.Booster:
    """LightGBM on the defaults overlaid with ``params``, early-stopped on the validation rows."""
    settings = {
        **DEFAULT_PARAMS,
        **(params or {}),
        "seed": seed,
        "deterministic": True,
    }
    return lgb.train(
        settings,
        lgb.Dataset(x_train, y_train),
        num_boost_round=max_rounds,
        valid_sets=[lgb.Dataset(x_valid, y_valid)],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )


def _categories(frame: pd.DataFrame, features: list[FeatureSpec]) -> dict[str, list[str]]:
    """The categories of each categorical feature, as seen in the training rows."""
    return {
        s.name: sorted(frame[s.name].dropna().astype(str).unique())
        for s in features
        if s.kind == "categorical"
    }


def _typed(
    frame: pd.DataFrame, features: list[FeatureSpec], categories: dict[str, list[str]]
) -> pd.DataFrame:
    columns = {}
    for spec in features:
        if spec.kind == "categorical":
            column = frame[spec.name]
            known = categories[spec.name]
            text = column.astype(str)
            # values outside the training categories become missing, as LightGBM expects
            text = text.where(column.notna() & text.isin(known))
            columns[spec.name] = pd.Categorical(text, categories=known)
        else:
            columns[spec.name] = pd.to_numeric(frame[spec.name], errors="coerce").astype(float)
    return pd.DataFrame(columns, index=frame.index)


@dataclass
class Baseline:
    """The logistic-regression baseline: median-imputed numeric features mapped to normal scores
    by their training quantiles, one-hot categories, and a logistic regression on top.

    Every fitted value is a plain number, so the baseline saves as JSON (``to_dict``) and loads
    without unpickling anything.
    """

    medians: dict[str, float]
    quantiles: dict[str, list[float]]
    categories: dict[str, list[str]]
    coef: list[float]
    intercept: float

    @classmethod
    def fit(cls, frame: pd.DataFrame, y: np.ndarray, *, features: list[FeatureSpec]) -> Baseline:
        numeric = [s.name for s in features if s.kind == "numeric"]
        medians, quantiles = {}, {}
        for name in numeric:
            column = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            finite = column[np.isfinite(column)]
            medians[name] = float(np.median(finite)) if finite.size else 0.0
            filled = np.where(np.isfinite(column), column, medians[name])
            levels = np.linspace(0, 100, min(_QUANTILES, max(len(filled), 2)))
            quantiles[name] = [float(q) for q in np.percentile(filled, levels)]
        categories = {
            s.name: sorted(frame[s.name].dropna().astype(str).unique()) + [_MISSING]
            for s in features
            if s.kind == "categorical"
        }
        blank = cls(medians, quantiles, categories, [], 0.0)
        regression = LogisticRegression(max_iter=1000, C=1.0).fit(blank._design(frame), y)
        return cls(
            medians,
            quantiles,
            categories,
            [float(c) for c in regression.coef_[0]],
            float(regression.intercept_[0]),
        )

    def churn_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability for each row of ``frame``."""
        return expit(self._design(frame) @ np.asarray(self.coef) + self.intercept)

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        """The regression's inputs: a normal score per numeric feature, then the one-hot
        columns of each categorical one (an unseen category sets none), each in name order,
        which is also the order a saved baseline's keys come back in."""
        columns = []
        for name in sorted(self.medians):
            column = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            filled = np.where(np.isfinite(column), column, self.medians[name])
            columns.append(_normal_scores(filled, np.asarray(self.quantiles[name]))[:, None])
        for name in sorted(self.categories):
            known = self.categories[name]
            text = frame[name].astype(str).where(frame[name].notna(), _MISSING)
            columns.append((text.to_numpy()[:, None] == np.asarray(known)[None, :]).astype(float))
        return np.hstack(columns) if columns else np.zeros((len(frame), 0))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """Rebuild a saved baseline, checking every value is a finite number or a category.

        Raises
        ------
        ValueError
            Missing fields, values that are not finite numbers, or sizes that do not agree.
        """
        medians = {str(k): _finite_list([v], k)[0] for k, v in data["medians"].items()}
        quantiles = {str(k): _finite_list(v, k) for k, v in data["quantiles"].items()}
        categories = {str(k): [str(c) for c in v] for k, v in data["categories"].items()}
        coef = _finite_list(data["coef"], "coef")
        width = len(medians) + sum(len(v) for v in categories.values())
        if set(quantiles) != set(medians) or len(coef) != width:
            raise ValueError(f"baseline with {len(coef)} coefficients for {width} inputs")
        if any(len(q) < 2 or np.any(np.diff(q) < 0) for q in quantiles.values()):
            raise ValueError("baseline quantiles too few or out of order")
        return cls(medians, quantiles, categories, coef, _finite_list([data["intercept"]], "")[0])


#: Quantiles kept per numeric feature of the baseline, and the category of missing values.
_QUANTILES = 200
_MISSING = "(missing)"


def _normal_scores(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map values to standard normal scores through the training quantiles.

    The rank is interpolated from below and from above and averaged, so a value repeated over
    several quantiles lands in their middle; ranks are kept off 0 and 1 to stay finite.
    """
    levels = np.linspace(0.0, 1.0, len(quantiles))
    rank = 0.5 * (
        np.interp(values, quantiles, levels) - np.interp(-values, -quantiles[::-1], -levels[::-1])
    )
    return ndtri(np.clip(rank, 1e-7, 1 - 1e-7))


def _finite_list(values: object, name: object) -> list[float]:
    """``values`` as a list of finite floats, else ValueError naming ``name``."""
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{name}: expected a list of numbers")
    numbers = [float(v) for v in values]
    if not np.all(np.isfinite(numbers)):
        raise ValueError(f"{name}: expected finite numbers")
    return numbers


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
