"""Training sets: a grid of as-of snapshots, features joined to labels, an out-of-time split.

Each snapshot's label window is ``[T, T + horizon)``. The latest ``validation_snapshots`` dates
are held out. A training snapshot must be at least ``purge_days`` before the first validation
date, ``T + purge <= first validation``; the default purge is the horizon, so each training
label window ends by the first validation date and no training label sees the validation
period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import ibis.expr.types as ir
import pandas as pd

from churnguard.asof import normalize_as_of
from churnguard.config import ChurnConfig, FeaturesConfig, TrainConfig
from churnguard.contract import Dataset
from churnguard.errors import ConfigError, LeakageError
from churnguard.features import FeaturePlan, build_features, plan_features, sampled
from churnguard.labels import build_labels, label_window_end

#: ``[train] end`` for "the last date whose labels the data holds".
LATEST_END = "latest"


@dataclass(frozen=True)
class SnapshotSplit:
    """Training and validation as-of dates, and the purge actually applied between them."""

    train: tuple[dt.datetime, ...]
    validation: tuple[dt.datetime, ...]
    purge_days: int
    horizon_days: int

    @property
    def reduced_purge(self) -> bool:
        """True when the purge is shorter than the horizon (training labels overlap validation)."""
        return self.purge_days < self.horizon_days


def snapshot_dates(train: TrainConfig, latest: dt.datetime | None = None) -> list[dt.datetime]:
    """The as-of dates of ``[train]``: the explicit list, or ``start`` to ``end`` every N days.

    ``end = "latest"`` ends the grid at ``latest`` (the last as-of date whose label window the
    data covers) and steps back from there, so a weekly retrain always validates on the newest
    complete labels.
    """
    if train.as_of:
        return normalize_as_of(train.as_of)
    if not (train.start and train.end):
        raise ConfigError("[train] needs as_of = [...] or both start and end")
    first = normalize_as_of([train.start])[0]
    step = dt.timedelta(days=train.every_days)
    if train.end == LATEST_END:
        if latest is None:
            raise ConfigError(
                "train.end = 'latest' needs dated labels (subscription or inactivity churn)"
            )
        last = dt.datetime.combine(latest.date(), dt.time())
        if last < first:
            raise ConfigError(
                f"train.end 'latest' is {last.date()}, before train.start {train.start}: the "
                "data ends too soon"
            )
        return [last - step * i for i in reversed(range((last - first) // step + 1))]
    last = normalize_as_of([train.end])[0]
    if last < first:
        raise ConfigError(f"train.end {train.end} is before train.start {train.start}")
    return [first + step * i for i in range((last - first) // step + 1)]


def check_label_windows(
    dates: list[dt.datetime], *, data_end: dt.datetime | None, horizon_days: int
) -> None:
    """Refuse as-of dates whose label window ``[T, T + horizon)`` runs past the end of the data.

    Raises
    ------
    LeakageError
        Naming the first such date and the last date whose window is complete.
    """
    late = [d for d in dates if data_end is not None and d > data_end]
    if late:
        raise LeakageError(
            f"as-of {late[0].date()}: its {horizon_days}-day label window runs past the end "
            f"of the data (the last complete window starts {data_end.date()}); drop the dates "
            "after it or shorten churn.horizon_days"
        )


def split_snapshots(
    dates: list[dt.datetime],
    *,
    train: TrainConfig,
    churn: ChurnConfig,
    data_end: dt.datetime | None,
) -> SnapshotSplit:
    """Hold out the latest snapshots; purge training snapshots whose labels reach into them.

    Raises
    ------
    LeakageError
        A snapshot's label window runs past the end of the data.
    ConfigError
        The dates leave no training snapshot.
    """
    check_label_windows(dates, data_end=data_end, horizon_days=churn.horizon_days)
    if len(dates) <= train.validation_snapshots:
        raise ConfigError(
            f"{len(dates)} snapshot(s) and validation_snapshots = {train.validation_snapshots} "
            "leave none to train on; add earlier as-of dates"
        )
    validation = dates[-train.validation_snapshots :]
    purge = churn.horizon_days if train.purge_days < 0 else train.purge_days
    cutoff = validation[0] - dt.timedelta(days=purge)
    training = [d for d in dates[: -train.validation_snapshots] if d <= cutoff]
    if not training:
        raise ConfigError(
            f"no training snapshot is at least {purge} days before the first validation date "
            f"{validation[0].date()} (the purge keeps training labels out of the validation "
            "period); add earlier as-of dates or lower train.purge_days"
        )
    return SnapshotSplit(tuple(training), tuple(validation), purge, churn.horizon_days)


def build_training_set(
    dataset: Dataset,
    *,
    as_of: list[dt.datetime],
    churn: ChurnConfig = ChurnConfig(),
    features: FeaturesConfig = FeaturesConfig(),
    plan: FeaturePlan | None = None,
) -> pd.DataFrame:
    """Features joined to labels: one row per labelled (customer_id, as_of), column ``churned``.

    Only customers in the churn population at a date (those with a label) are kept.
    """
    return training_set(
        dataset, as_of=as_of, churn=churn, features=features, plan=plan
    ).to_pandas()


def training_set(
    dataset: Dataset,
    *,
    as_of: list[dt.datetime],
    churn: ChurnConfig = ChurnConfig(),
    features: FeaturesConfig = FeaturesConfig(),
    plan: FeaturePlan | None = None,
    sample: tuple[float, int] = (1.0, 0),
    keep: Sequence[dt.datetime] = (),
) -> ir.Table:
    """:func:`build_training_set` as an unexecuted query.

    ``sample = (fraction, seed)`` keeps that share of the customers (every row of a customer
    kept), except at the ``keep`` dates, where all rows stay (the validation snapshots).
    """
    plan = plan or plan_features(
        dataset,
        config=features,
        activity_events=churn.activity_events,
        horizon_days=churn.horizon_days,
    )
    labels = build_labels(dataset, as_of=as_of, churn=churn)
    frame = build_features(dataset, as_of=as_of, config=features, plan=plan)
    joined = frame.join(labels, ["customer_id", "as_of"])
    fraction, seed = sample
    if fraction < 1:
        chosen = sampled(joined.customer_id, fraction, seed)
        joined = joined.filter(chosen | joined.as_of.isin(list(keep)) if keep else chosen)
    return joined.order_by(["as_of", "customer_id"])


def training_frames(
    dataset: Dataset,
    *,
    train: TrainConfig,
    churn: ChurnConfig,
    features: FeaturesConfig = FeaturesConfig(),
    plan: FeaturePlan | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, SnapshotSplit]:
    """The out-of-time training and validation frames of ``[train]``, with the split used.

    Only ``[train] sample_fraction`` of the customers' training rows are read; validation rows
    are all read. ``plan`` is the run's feature plan (derived from the data if None).
    """
    if churn.definition == "labels":
        raise ConfigError(
            "the labels definition has no dates to split by; use build_training_set and a "
            "stratified random hold-out"
        )
    latest = label_window_end(dataset, churn=churn)
    dates = snapshot_dates(train, latest)
    split = split_snapshots(dates, train=train, churn=churn, data_end=latest)
    frame = training_set(
        dataset,
        as_of=[*split.train, *split.validation],
        churn=churn,
        features=features,
        plan=plan,
        sample=(train.sample_fraction, train.seed),
        keep=split.validation,
    ).to_pandas()
    is_validation = frame["as_of"].isin(pd.to_datetime(list(split.validation)))
    return (
        frame[~is_validation].reset_index(drop=True),
        frame[is_validation].reset_index(drop=True),
        split,
    )
