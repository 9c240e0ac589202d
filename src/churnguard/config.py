"""Typed pipeline configuration: frozen sections read from a TOML file, then CLI overrides.

A config file is plain TOML, e.g. ``pipelines/demo.toml``::

    [data]
    path = "data/demo"

    [churn]
    definition = "subscription"   # inactivity | subscription | labels
    horizon_days = 30

    [features]
    windows = [7, 30, 90]

Unknown sections and keys are refused (a typo must not silently fall back to a default).
Relative paths are taken relative to the working directory, as a shell user expects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files as package_files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from churnguard.errors import ConfigError
from churnguard.io import is_safe_name

if TYPE_CHECKING:
    import numpy as np

ChurnDefinition = Literal["inactivity", "subscription", "labels"]

#: The largest seed: LightGBM takes a signed 32-bit one.
MAX_SEED = 2**31 - 1
#: Column names that look like the outcome; refused as features unless allowed by name.
LEAKY_NAME_PARTS: tuple[str, ...] = (
    "churn",
    "cancel",
    "end_date",
    "ended",
    "terminat",
    "closed",
    "lost",
    "attrit",
    "exit",
)


@dataclass(frozen=True)
class DataConfig:
    """Where the dataset lives: a folder, with optional per-table file paths."""

    path: Path = Path("data/demo")
    customers: Path | None = None
    events: Path | None = None
    subscriptions: Path | None = None
    labels: Path | None = None
    #: The decisions a team carried out (``treated`` or ``holdout``), optional.
    treatments: Path | None = None
    #: Exact duplicate rows of events or subscriptions (a file appended to itself): refused
    #: (``error``) or dropped, keeping one, with a count among the warnings (``drop``).
    duplicates: Literal["error", "drop"] = "error"


@dataclass(frozen=True)
class ChurnConfig:
    """Which churn definition labels a customer, and over how many days after the as-of date."""

    definition: ChurnDefinition = "inactivity"
    horizon_days: int = 30
    #: Event types that count as activity; empty means every event type.
    activity_events: tuple[str, ...] = ()
    #: ``inactivity``: who is scored and trained on. ``active``: customers with activity in the
    #: horizon before the date; ``all``: everyone with activity before it, lapsed customers too
    #: (a win-back list).
    population: Literal["active", "all"] = "active"

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ConfigError(f"churn.horizon_days must be at least 1, got {self.horizon_days}")
        if self.population == "all" and self.definition != "inactivity":
            raise ConfigError(
                'churn.population = "all" is for inactivity churn (a subscription or labels '
                "population is set by the data)"
            )


@dataclass(frozen=True)
class FeaturesConfig:
    """Which point-in-time features are built."""

    windows: tuple[int, ...] = (7, 30, 90)
    #: Event types whose ``value`` is a survey score (latest answer and window mean).
    survey_events: tuple[str, ...] = ("nps", "csat")
    #: Static customer attributes to leave out (they describe the customer now, not at T).
    exclude: tuple[str, ...] = ()
    #: Outcome-looking attributes that are nevertheless wanted as features.
    allow_leaky: tuple[str, ...] = ()
    #: Event types that become features; empty: every type in the data ...
    event_types: tuple[str, ...] = ()
    #: ... of which there may be at most this many (each becomes a dozen features or more).
    max_event_types: int = 100

    def __post_init__(self) -> None:
        if not self.windows or any(w < 1 for w in self.windows):
            raise ConfigError(
                f"features.windows must be positive day counts, got {list(self.windows)}"
            )
        if len(set(self.windows)) != len(self.windows):
            raise ConfigError(f"features.windows has repeats: {list(self.windows)}")
        object.__setattr__(self, "windows", tuple(sorted(self.windows)))
        if self.max_event_types < 1:
            raise ConfigError(
                f"features.max_event_types must be at least 1, got {self.max_event_types}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Where trained models are kept (``<registry>/<name>/<version>/``) and which one serves."""

    name: str = "churn"
    #: Registry folder, relative to the working directory.
    registry: Path = Path("models")
    #: The version scoring, evaluation and the treatment loop use: ``champion`` (the model in
    #: service, see ``churnguard models promote``), ``latest`` (the newest) or a version name.
    version: str = "champion"
    #: Promote a newly trained model only when it beats both the champion and the baseline on
    #: the same validation rows (the whole 95 % interval of its ROC-AUC lead above zero).
    auto_promote: bool = False
    #: Log each trained model to MLflow and register its pyfunc (``churnguard[mlflow]``).
    mlflow: bool = False
    #: MLflow's tracking URI; empty: MLflow's own default (``MLFLOW_TRACKING_URI``).
    tracking_uri: str = ""

    def __post_init__(self) -> None:
        for key, value in (("name", self.name), ("version", self.version)):
            if not is_safe_name(value):
                raise ConfigError(
                    f"model.{key} {value!r}: expected one folder name of letters, digits, "
                    "'.', '_' or '-', not starting with '.'"
                )


@dataclass(frozen=True)
class TrainConfig:
    """Which as-of dates make the training set, and how many are held out, out of time.

    Give ``as_of`` explicitly, or ``start``, ``end`` and ``every_days`` for a regular grid.
    """

    as_of: tuple[str, ...] = ()
    start: str = ""
    #: A date, or ``latest``: the last date whose label window the data covers (the grid then
    #: steps back from it), for retraining on a schedule.
    end: str = ""
    every_days: int = 30
    #: The latest snapshots, held out as the out-of-time validation set.
    validation_snapshots: int = 1
    #: Days between the last training label and the first validation date; -1 = the horizon.
    purge_days: int = -1
    #: ``labels`` mode: share of the labelled customers held out (stratified) for validation.
    holdout_fraction: float = 0.2
    #: Seed of LightGBM, the hold-out split and the search; same seed and data, same model.
    seed: int = 0
    #: Share of the customers whose training rows (not the validation rows) are read to fit on;
    #: a fixed hash of seed and customer picks them, so the same data gives the same sample.
    sample_fraction: float = 1.0
    #: ``--tune``: stop the hyperparameter search after this many trials ...
    tune_trials: int = 30
    #: ... or after this many seconds, whichever comes first.
    tune_seconds: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"train.seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if self.every_days < 1:
            raise ConfigError(f"train.every_days must be at least 1, got {self.every_days}")
        if self.validation_snapshots < 1:
            raise ConfigError(
                f"train.validation_snapshots must be at least 1, got {self.validation_snapshots}"
            )
        if self.purge_days < -1:
            raise ConfigError(f"train.purge_days must be 0 or more, got {self.purge_days}")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError(
                f"train.holdout_fraction must be between 0 and 1, got {self.holdout_fraction}"
            )
        if not 0 < self.sample_fraction <= 1:
            raise ConfigError(
                f"train.sample_fraction must be in (0, 1], got {self.sample_fraction}"
            )
        if self.tune_trials < 1 or self.tune_seconds < 1:
            raise ConfigError("train.tune_trials and train.tune_seconds must be at least 1")


@dataclass(frozen=True)
class EvaluationConfig:
    """The retention campaign the profit curve prices: contact the top k, at a cost each."""

    #: Cost of one intervention (a call, a discount), in the currency of the data.
    intervention_cost: float = 20.0
    #: Share of contacted would-be churners the intervention keeps.
    success_rate: float = 0.3
    #: Value of a kept customer, in the same currency.
    customer_value: float = 600.0

    def __post_init__(self) -> None:
        if not 0 <= self.success_rate <= 1:
            raise ConfigError(
                f"evaluation.success_rate must be between 0 and 1, got {self.success_rate}"
            )
        if self.intervention_cost < 0 or self.customer_value < 0:
            raise ConfigError("evaluation.intervention_cost and customer_value must be >= 0")


#: A condition of ``[[interventions]] when``: ``feature op number``, e.g. ``tenure_days < 90``.
CONDITION = re.compile(r"\s*([a-z_][a-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*")


@dataclass(frozen=True)
class InterventionConfig:
    """One retention action: the problem it addresses, when it applies, its cost and success.

    ``problem`` lists conditions of which at least one must hold: the customer has the problem
    the intervention addresses now (``support_ticket_count_30d >= 1``). Without a problem, the
    intervention fits a customer one of whose reasons it ``answers``: parts of feature names
    (``support_ticket`` answers ``support_ticket_count_30d``); ``*`` answers any reason.
    ``when`` lists conditions that must all hold. Conditions are ``name op number`` on a
    feature or on ``customer_value`` or ``churn_probability``.
    """

    name: str
    cost: float
    success_rate: float
    answers: tuple[str, ...] = ("*",)
    when: tuple[str, ...] = ()
    problem: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.success_rate <= 1:
            raise ConfigError(
                f"interventions {self.name!r}: success_rate must be in (0, 1], "
                f"got {self.success_rate}"
            )
        if self.cost < 0:
            raise ConfigError(f"interventions {self.name!r}: cost must be >= 0, got {self.cost}")
        for condition in (*self.problem, *self.when):
            if not CONDITION.fullmatch(condition):
                raise ConfigError(
                    f"interventions {self.name!r}: condition {condition!r} is not "
                    "'feature op number' (op one of < <= > >= == !=)"
                )


#: What a simulated intervention acts on: the part of the churn hazard its problem adds.
Mechanism = Literal["tickets", "payments", "price", "nps", "engagement", "any"]


@dataclass(frozen=True)
class EffectConfig:
    """The true effect of one intervention in the simulator (``churnguard generate --campaigns``).

    For the horizon after a contact it removes ``strength`` of the churn hazard of a customer
    who has, at contact, the problem it addresses (``acts_on``), scaled by how responsive the
    customer is (disengaged customers barely respond), and adds ``backfire`` to the churn
    log-odds of calm, disengaged customers (sleeping dogs, whom a contact reminds to leave).
    """

    intervention: str
    acts_on: Mechanism
    strength: float
    backfire: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 1 or self.backfire < 0:
            raise ConfigError(
                f"effects {self.intervention!r}: strength must be in [0, 1] and backfire "
                f">= 0, got {self.strength} and {self.backfire}"
            )


@dataclass(frozen=True)
class CampaignsConfig:
    """Simulated monthly campaigns: each reaches a random ``reach`` share of the active
    customers, gives each an intervention at random and keeps ``holdout`` of them back.

    ``arms = "eligible"`` draws each customer's intervention among those for a problem they
    have at contact, and only a customer with none among those meant for anyone, as a team
    tests an intervention on the customers it is meant for; ``"all"`` draws among every
    intervention.
    """

    reach: float = 0.5
    holdout: float = 0.5
    arms: Literal["eligible", "all"] = "eligible"
    effects: tuple[EffectConfig, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.reach <= 1 or not 0 < self.holdout < 1:
            raise ConfigError(
                f"campaigns: reach must be in (0, 1] and holdout in (0, 1), got {self.reach} "
                f"and {self.holdout}"
            )
        names = [e.intervention for e in self.effects]
        if not names or len(set(names)) < len(names):
            raise ConfigError("campaigns: give each intervention one [[effects]] entry")


@dataclass(frozen=True)
class ScoreConfig:
    """How the nightly list is cut and labelled."""

    #: List at most this many customers; 0 = no limit.
    top_n: int = 0
    #: Spend at most this much on interventions; 0 = no limit.
    budget: float = 0.0
    #: How a ``budget`` is spent: ``knapsack`` chooses customers and interventions for the most
    #: total expected benefit within it (a cheaper intervention may win); ``rank`` takes each
    #: customer's best intervention in order of benefit until the money runs out.
    allocation: Literal["knapsack", "rank"] = "knapsack"
    #: Churn probability from which a customer is ``high`` risk ...
    high_risk: float = 0.3
    #: ... and ``medium`` risk; below it, ``low``.
    medium_risk: float = 0.1
    #: List only customers at least this likely to churn.
    min_probability: float = 0.0
    #: List only customers in these risk tiers (empty: every tier).
    tiers: tuple[Literal["high", "medium", "low"], ...] = ()
    #: Seconds to wait for another run writing the same out folder before giving up.
    lock_timeout: float = 0.0
    #: Out folder; ``{as_of}`` is replaced by the as-of date, so nightly runs keep their own.
    out: str = "scores/{as_of}"
    #: Share of the customers the list would contact that are kept back, at random, to measure
    #: the interventions against (see :mod:`churnguard.assignment`); 0 = contact everyone.
    holdout: float = 0.1
    #: Mixed into the holdout's hash: another salt draws another holdout from the same list.
    salt: str = ""
    #: What an intervention is expected to do: ``assumed`` (the catalogue's success rates) or
    #: ``learned`` (uplift measured by ``churnguard uplift``, used only when it was promoted).
    effects: Literal["assumed", "learned"] = "assumed"
    #: The ``effects.json`` that ``churnguard uplift`` wrote, for ``effects = "learned"``.
    effects_path: Path | None = None
    #: Columns of the ``customers`` table copied into ``interventions.csv`` (contact, owner).
    carry: tuple[str, ...] = ()
    #: A customer contacted (treated) within this many days before the as-of date, by an
    #: earlier run beside the out folder or in the ``treatments`` table, is not listed (0: off).
    cooldown_days: int = 0
    #: ``interventions.csv``'s separator: ``;`` for locales whose decimal mark is a comma (the
    #: numbers then use one too); ``assignments.csv`` always uses commas.
    csv_separator: Literal[",", ";"] = ","
    #: Also write ``interventions.xlsx``: percentages, money, and a sheet explaining columns.
    xlsx: bool = False
    #: Currency symbol of the workbook's money cells (empty: none).
    currency: str = ""

    def __post_init__(self) -> None:
        if self.top_n < 0 or self.budget < 0:
            raise ConfigError("score.top_n and score.budget must be >= 0 (0 = no limit)")
        if not 0 <= self.holdout < 1:
            raise ConfigError(
                f"score.holdout must be a share from 0 to below 1, got {self.holdout}"
            )
        if self.effects == "learned" and self.effects_path is None:
            raise ConfigError(
                'score.effects = "learned" needs score.effects_path, the effects.json that '
                "churnguard uplift wrote"
            )
        if self.lock_timeout < 0:
            raise ConfigError(f"score.lock_timeout must be >= 0 seconds, got {self.lock_timeout}")
        if self.cooldown_days < 0:
            raise ConfigError(f"score.cooldown_days must be >= 0, got {self.cooldown_days}")
        if not 0 <= self.min_probability < 1:
            raise ConfigError(
                f"score.min_probability must be from 0 to below 1, got {self.min_probability}"
            )
        if not 0 < self.medium_risk <= self.high_risk < 1:
            raise ConfigError(
                "score.medium_risk and score.high_risk must satisfy 0 < medium <= high < 1, "
                f"got {self.medium_risk} and {self.high_risk}"
            )

    def risk_tiers(self, probability: Sequence[float]) -> np.ndarray:
        """Each probability's risk tier: ``high``, ``medium`` or ``low``."""
        import numpy as np  # here, so that reading a config (and --help) does not load numpy

        p = np.asarray(probability, dtype=float)
        return np.where(
            p >= self.high_risk, "high", np.where(p >= self.medium_risk, "medium", "low")
        )


@dataclass(frozen=True)
class UpliftConfig:
    """How ``churnguard uplift`` learns effects from the treatment log."""

    #: ``segments``: treated minus holdout per intervention, problem and probability band,
    #: shrunk toward each other.
    method: Literal["segments"] = "segments"
    #: ``catalogue``: each group's measured effect is shrunk toward the effect the catalogue
    #: assumes, by as much as the groups' estimates agree with the catalogue (empirical Bayes);
    #: ``none``: the evidence alone (a group shown at a 5 % false discovery rate).
    prior: Literal["catalogue", "none"] = "catalogue"
    #: Probability bands (of equal size) within each intervention and problem.
    bands: int = 3
    #: Share of the decisions in each run of list dates the check holds out at a time (each run
    #: is checked with effects learned from the others).
    evaluation_share: float = 0.25

    def __post_init__(self) -> None:
        if not 1 <= self.bands <= 10:
            raise ConfigError(f"uplift.bands must be from 1 to 10, got {self.bands}")
        if not 0 < self.evaluation_share < 1:
            raise ConfigError(
                f"uplift.evaluation_share must be above 0 and below 1, got {self.evaluation_share}"
            )


@dataclass(frozen=True)
class ValueConfig:
    """What a customer pays when the data says it in a column rather than in subscriptions,
    e.g. a telecom export's monthly charge: value = the charge per month × expected months."""

    #: A numeric column of the customers table (a feature of the model) holding the charge;
    #: empty: subscriptions' ``mrr``, else the purchase history.
    column: str = ""
    #: What the charge is for.
    period: Literal["month", "year"] = "month"


@dataclass(frozen=True)
class ReasonsConfig:
    """How long an event that is bad news (a support ticket, a failed payment, a complaint)
    stays a reason to act: older ones, and counts over longer windows, are no reasons."""

    #: Days, for every such event type without its own.
    recent_days: float = 30.0
    #: Days per event type, e.g. ``{ payment_failed = 14, support_ticket = 60 }``.
    recent: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, days in {"recent_days": self.recent_days, **self.recent}.items():
            if days <= 0:
                raise ConfigError(f"reasons: {name} must be above 0 days, got {days}")

    def window(self, event_type: str) -> float:
        """Days an event of ``event_type`` stays a reason."""
        return self.recent.get(event_type, self.recent_days)


@dataclass(frozen=True)
class DriftConfig:
    """When a feature's shift from the training data is worth a warning in the manifest.

    Features that grow with time by construction (tenure: days since something began; totals
    since the first activity) drift every night and are named only when ``thresholds`` gives
    them a limit of their own.
    """

    #: PSI above which a feature is named.
    threshold: float = 0.25
    #: A limit of its own per feature name.
    thresholds: dict[str, float] = field(default_factory=dict)
    #: Features never named.
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, limit in {"threshold": self.threshold, **self.thresholds}.items():
            if limit <= 0:
                raise ConfigError(f"drift threshold for {name} must be above 0, got {limit}")


@dataclass(frozen=True)
class SparkConfig:
    """Where Spark runs when ``[engine] name = "spark"`` (see "Running on a cluster")."""

    #: Master URL: ``local[4]``, ``spark://host:7077``, ``yarn``, ``k8s://...``. Empty: the
    #: session already running (Databricks, ``spark-submit``), else a new ``local[*]`` one.
    master: str = ""
    #: Settings for a new session, e.g. ``{ "spark.executor.memory" = "8g" }``.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineConfig:
    """Which engine runs the queries, and its resources.

    ``duckdb`` (default) runs embedded and spills to disk beyond ``memory_limit``; ``spark``
    runs features, labels and scoring on a Spark session (``[engine.spark]``), with the model
    trained and the list cut on the driver.
    """

    name: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = field(default_factory=SparkConfig)
    memory_limit: str = "1500MB"
    #: Worker threads; 0 uses every core, and more than the machine's cores counts as all of them.
    threads: int = 0
    #: Folder for spilled data; empty uses DuckDB's default beside the working directory.
    temp_directory: str = ""

    def __post_init__(self) -> None:
        self.memory_limit_bytes()  # refuse a malformed limit when the config is read
        if self.threads < 0:
            raise ConfigError(f"engine.threads must be >= 0 (0 = every core), got {self.threads}")

    def thread_count(self) -> int:
        """The threads to run: ``threads`` bounded by this machine's cores, 0 meaning all."""
        cores = os.cpu_count() or 1
        return min(self.threads, cores) if self.threads else cores

    def memory_limit_bytes(self) -> int:
        """``memory_limit`` in bytes ("1500MB", "2GB", "1.5GiB")."""
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B)\s*", self.memory_limit, re.I)
        if not match:
            raise ConfigError(
                f"engine.memory_limit must be a size like 1500MB or 2GB, got {self.memory_limit!r}"
            )
        unit = match.group(2).upper()
        base = 1024 if "I" in unit else 1000
        return int(float(match.group(1)) * base ** ("KMGT".index(unit[0]) + 1))


@dataclass(frozen=True)
class PipelineConfig:
    """The whole run configuration, one frozen section per TOML table."""

    data: DataConfig = field(default_factory=DataConfig)
    churn: ChurnConfig = field(default_factory=ChurnConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    uplift: UpliftConfig = field(default_factory=UpliftConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    reasons: ReasonsConfig = field(default_factory=ReasonsConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    #: The intervention catalogue; empty means the packaged default (``pipelines/nightly.toml``).
    interventions: tuple[InterventionConfig, ...] = ()
    #: Where it was read from (a TOML path, or ``defaults``): shown in manifests, never part of
    #: the config's meaning (not in :meth:`to_dict` or the fingerprint).
    source: str = field(default="defaults", compare=False, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (paths as strings, tuples as lists)."""
        plain = _plain(dataclasses.asdict(self))
        del plain["source"]
        return plain

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of this config: equal configs, equal fingerprints."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def load_config(
    path: Path | str | None = None, overrides: dict[str, Any] | None = None
) -> PipelineConfig:
    """Read a pipeline config from TOML (or defaults when ``path`` is None), then apply overrides.

    Parameters
    ----------
    path : path of a TOML file, or None for the built-in defaults.
    overrides : dotted keys to values, e.g. ``{"data.path": "data/x"}``; None values are ignored,
        so CLI options that were not given leave the file's value in place.

    Raises
    ------
    ConfigError
        The file is missing or not TOML, a section or key is unknown, or a value has the wrong
        type.
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = value
    return dataclasses.replace(_build(PipelineConfig, raw, source, prefix=""), source=source)


def config_from_dict(raw: dict[str, Any], source: str = "saved config") -> PipelineConfig:
    """A config from its :meth:`PipelineConfig.to_dict` form, e.g. the one saved with a model."""
    return _build(PipelineConfig, _drop_none(raw), source, prefix="")


def _build(cls: type, raw: Any, source: str, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a TOML table, checking names and types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{prefix.rstrip('.')}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(raw) - names)
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "top level"
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r} in {where}; "
            f"known keys: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(hints[name], value, source, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    """Check one value against its annotation, converting lists to tuples and str to Path."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, prefix=f"{key}.")
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(hint) if a is not type(None)]
        return _coerce(args[0], value, source, key)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = " | ".join(map(str, allowed))
            raise ConfigError(f"{source}: {key} must be one of {choices}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(v, str | int | float | bool) for v in value.values()
        ):
            raise ConfigError(f"{source}: {key} must be a table of names to values, got {value!r}")
        if get_args(hint)[1] is float:
            return {str(k): _coerce(float, v, source, f"{key}.{k}") for k, v in value.items()}
        return {
            str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()
        }
    if origin is tuple:
        item = get_args(hint)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return tuple(_coerce(item, v, source, key) for v in value)
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{source}: {key} must be a path string, got {value!r}")
        return Path(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{source}: {key} must be a whole number, got {value!r}")
    if hint is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    return float(value) if hint is float else value


def _drop_none(value: Any) -> Any:
    """``value`` without the None entries :meth:`PipelineConfig.to_dict` writes for unset keys."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def default_interventions() -> tuple[InterventionConfig, ...]:
    """The packaged catalogue (the same entries as ``pipelines/nightly.toml``)."""
    text = package_files("churnguard").joinpath("interventions.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    return config_from_dict({"interventions": raw["interventions"]}).interventions


def run_catalogue(config: PipelineConfig) -> tuple[InterventionConfig, ...]:
    """The interventions a run uses: the config's own, else the packaged ones."""
    return config.interventions or default_interventions()


def load_effects(path: Path | str | None = None) -> CampaignsConfig:
    """The simulator's campaigns and true effects from a TOML file; None: the packaged ones
    (``src/churnguard/effects.toml``, one entry per intervention of the default catalogue)."""
    if path is None:
        text, source = (
            package_files("churnguard").joinpath("effects.toml").read_text("utf-8"),
            "effects.toml",
        )
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise ConfigError(f"effects file {path} does not exist") from None
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"effects file {source} is not valid TOML: {exc}") from None
    return _build(CampaignsConfig, raw, source, prefix="")
