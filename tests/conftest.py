"""Tiny hand-written datasets, written to disk the way an export would arrive."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import churnguard as cg
from churnguard.config import ChurnConfig, TrainConfig
from churnguard.model import fit


def write_dataset(folder: Path, fmt: str = "csv", **tables: pd.DataFrame) -> Path:
    """Write each named frame as ``<folder>/<name>.<fmt>`` and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture
def shop() -> dict[str, pd.DataFrame]:
    """Three customers around the as-of date 2025-03-01; every value is checked by hand."""
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "signup_date": ["2024-05-01", "2024-11-15", "2025-03-10"],
            "segment": ["smb", "enterprise", "smb"],
            "seats": [3, 40, 1],
        }
    )
    events = pd.DataFrame(
        [
            ("A", "2024-06-01 12:00:00", "nps", 9.0),
            ("A", "2025-01-10 12:00:00", "purchase", 50.0),
            ("A", "2025-01-15 00:00:00", "login", None),
            ("A", "2025-02-01 12:00:00", "nps", 3.0),
            ("A", "2025-02-20 00:00:00", "login", None),
            ("A", "2025-02-25 12:00:00", "purchase", 30.0),
            ("A", "2025-02-27 12:00:00", "login", None),
            ("A", "2025-02-28 06:00:00", "support_ticket", None),
            ("A", "2025-03-01 00:00:00", "login", None),
            ("A", "2025-03-05 09:00:00", "login", None),
            ("B", "2024-12-01 00:00:00", "login", None),
            ("B", "2025-03-20 00:00:00", "purchase", 10.0),
            ("C", "2025-03-11 00:00:00", "login", None),
        ],
        columns=["customer_id", "timestamp", "event_type", "value"],
    )
    subscriptions = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C"],
            "start_date": ["2024-05-01", "2025-02-10", "2024-11-15", "2025-03-10"],
            "end_date": ["2025-02-10", None, "2025-03-15", None],
            "plan": ["pro", "basic", "basic", "basic"],
            "mrr": [50.0, 20.0, 20.0, 20.0],
        }
    )
    return {"customers": customers, "events": events, "subscriptions": subscriptions}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A model fitted out of time on generated data: (TrainResult, validation frame, split)."""
    folder = tmp_path_factory.mktemp("trained")
    cg.generate(folder, customers=4_000, days=420, seed=11)
    data = cg.load_dataset(folder, definition="subscription")
    churn = ChurnConfig(definition="subscription", horizon_days=30)
    train = TrainConfig(start="2024-04-01", end="2025-01-20", every_days=28)
    fit_frame, valid, split = cg.training_frames(data, train=train, churn=churn)
    result = fit(fit_frame, valid, features=list(cg.plan_features(data).specs), seed=3)
    return result, valid, split
