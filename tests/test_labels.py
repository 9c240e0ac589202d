"""Churn labels under each definition, checked by hand on the tiny shop."""

from __future__ import annotations

import datetime as dt

import pandas as pd

import churnguard as cg
from churnguard.config import ChurnConfig
from churnguard.labels import data_end, label_window_end
from conftest import write_dataset

T = dt.datetime(2025, 3, 1)


def _labels(dataset: cg.Dataset, **churn) -> dict[str, int]:
    frame = cg.build_labels(dataset, as_of=[T], churn=ChurnConfig(**churn)).to_pandas()
    return dict(zip(frame.customer_id, frame.churned, strict=True))


def test_inactivity_labels_use_only_the_horizon_after_t(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop))
    # A: active before T, logs in on T itself → kept. B: last activity 2024-12-01 is more than
    # 30 days before T → not in the population. C: signs up after T.
    assert _labels(dataset, definition="inactivity", horizon_days=30) == {"A": 0}
    # With a 90-day horizon B is in the population (login 90 days before T) and buys on 03-20.
    assert _labels(dataset, definition="inactivity", horizon_days=90) == {"A": 0, "B": 0}
    # Only logins count as activity: B's purchase no longer saves it.
    assert _labels(
        dataset, definition="inactivity", horizon_days=90, activity_events=("login",)
    ) == {"A": 0, "B": 1}


def test_subscription_labels(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop), definition="subscription")
    # A downgraded (still active), B's subscription ends 03-15 within the horizon, C starts later.
    assert _labels(dataset, definition="subscription", horizon_days=30) == {"A": 0, "B": 1}
    # A 14-day horizon ends on 03-15 exactly: B is still subscribed just before it.
    assert _labels(dataset, definition="subscription", horizon_days=14) == {"A": 0, "B": 0}


def test_labels_table_flags(tmp_path, shop):
    shop["labels"] = pd.DataFrame({"customer_id": ["A", "B"], "churned": ["no", "Yes"]})
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop), definition="labels")
    assert _labels(dataset, definition="labels") == {"A": 0, "B": 1}


def test_label_window_end_leaves_a_full_horizon(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop))
    end = cg.labels.label_window_end(dataset, churn=ChurnConfig(horizon_days=30))
    assert end == dt.datetime(2025, 2, 18)  # last event 2025-03-20 00:00 minus 30 days


def test_rows_far_beyond_the_data_do_not_move_its_end(tmp_path, shop):
    churn = ChurnConfig(definition="inactivity", horizon_days=30)
    plain = cg.load_dataset(write_dataset(tmp_path / "plain", **shop))
    typo = pd.DataFrame(
        [("A", "2099-01-01 00:00:00", "login", None)], columns=shop["events"].columns
    )
    shop["events"] = pd.concat([shop["events"], typo], ignore_index=True)
    dated = cg.load_dataset(write_dataset(tmp_path / "typo", **shop))
    assert data_end(dated, churn=churn) == (data_end(plain, churn=churn)[0], 1)
    assert label_window_end(dated, churn=churn) == label_window_end(plain, churn=churn)
