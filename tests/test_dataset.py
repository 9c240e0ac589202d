"""Snapshot grids and the out-of-time split: no training label reaches the validation period."""

from __future__ import annotations

import datetime as dt

import pytest

import churnguard as cg
from churnguard.config import ChurnConfig, TrainConfig
from churnguard.dataset import snapshot_dates, split_snapshots, training_frames
from churnguard.errors import ConfigError, LeakageError

CHURN = ChurnConfig(definition="subscription", horizon_days=30)
D = dt.datetime


def test_a_regular_grid_runs_from_start_to_end_every_n_days():
    dates = snapshot_dates(TrainConfig(start="2025-01-01", end="2025-03-05", every_days=30))
    assert dates == [D(2025, 1, 1), D(2025, 1, 31), D(2025, 3, 2)]
    assert snapshot_dates(TrainConfig(as_of=("2025-02-01", "2025-01-01"))) == [
        D(2025, 1, 1),
        D(2025, 2, 1),
    ]


def test_the_default_purge_drops_training_snapshots_whose_labels_reach_validation():
    dates = [D(2025, 1, 1), D(2025, 1, 15), D(2025, 2, 1), D(2025, 3, 1)]
    split = split_snapshots(dates, train=TrainConfig(), churn=CHURN, data_end=D(2025, 6, 1))
    # labels of 01-15 end 02-14, before the validation date 03-01: kept;
    # labels of 02-01 end 03-03, inside the validation period: purged.
    assert split.validation == (D(2025, 3, 1),)
    assert split.train == (D(2025, 1, 1), D(2025, 1, 15))
    assert not split.reduced_purge
    short = split_snapshots(
        dates, train=TrainConfig(purge_days=0), churn=CHURN, data_end=D(2025, 6, 1)
    )
    assert short.train == (D(2025, 1, 1), D(2025, 1, 15), D(2025, 2, 1))
    assert short.reduced_purge


def test_dates_that_leave_nothing_to_train_on_say_what_to_change():
    with pytest.raises(ConfigError, match="leave none to train on; add earlier as-of dates"):
        split_snapshots([D(2025, 3, 1)], train=TrainConfig(), churn=CHURN, data_end=None)
    with pytest.raises(ConfigError, match="no training snapshot is at least 30 days before"):
        split_snapshots(
            [D(2025, 2, 20), D(2025, 3, 1)], train=TrainConfig(), churn=CHURN, data_end=None
        )


def test_a_snapshot_whose_label_window_runs_past_the_data_is_refused():
    with pytest.raises(LeakageError, match="as-of 2025-03-01: its 30-day label window runs past"):
        split_snapshots(
            [D(2025, 1, 1), D(2025, 3, 1)],
            train=TrainConfig(),
            churn=CHURN,
            data_end=D(2025, 2, 1),
        )


def test_training_frames_on_generated_data_hold_out_the_latest_snapshot(tmp_path):
    cg.generate(tmp_path, customers=500, days=300, seed=9)
    data = cg.load_dataset(tmp_path, definition="subscription")
    train = TrainConfig(start="2024-04-01", end="2024-09-20", every_days=30)
    fit, valid, split = training_frames(data, train=train, churn=CHURN)
    assert set(valid["as_of"]) == {split.validation[0]}
    assert max(fit["as_of"]) + dt.timedelta(days=30) <= split.validation[0]
    assert set(fit["churned"]) == {0, 1}
    assert not fit.duplicated(["customer_id", "as_of"]).any()
    assert (fit["subscription_active"] == 1).all()  # the subscription population at each date


def test_a_latest_end_validates_on_the_newest_complete_labels_and_steps_back():
    train = TrainConfig(start="2025-01-01", end="latest", every_days=30)
    dates = snapshot_dates(train, dt.datetime(2025, 12, 1, 17, 30))
    assert dates[-1] == dt.datetime(2025, 12, 1) and dates[0] >= dt.datetime(2025, 1, 1)
    assert {b - a for a, b in zip(dates, dates[1:], strict=False)} == {dt.timedelta(days=30)}
    assert dates[0] - dt.timedelta(days=30) < dt.datetime(2025, 1, 1)  # as far back as allowed
    with pytest.raises(ConfigError, match="needs dated labels"):
        snapshot_dates(train, None)
    with pytest.raises(ConfigError, match="before train.start"):
        snapshot_dates(train, dt.datetime(2024, 6, 1))
