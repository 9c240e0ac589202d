"""Tiny hand-written datasets, written to disk the way an export would arrive."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import strategies as st

import churnguard as cg
from churnguard.config import ChurnConfig, TrainConfig, default_interventions
from churnguard.features import FeatureSpec
from churnguard.model import fit
from churnguard.synth import generate_entity_table

#: Features of hand-made customers whose reasons and interventions are worked out by hand.
DRIVER_SPECS = [
    FeatureSpec("login_trend_30d", "", "trend", event_type="login", window_days=30),
    FeatureSpec(
        "support_ticket_count_30d", "", "count", event_type="support_ticket", window_days=30
    ),
    FeatureSpec("last_nps_score", "", "score", event_type="nps"),
    FeatureSpec("days_since_last_purchase", "", "recency", event_type="purchase"),
    FeatureSpec("tenure_days", "", "days"),
]

#: Names as hostile data holds them: quotes, SQL and CSV punctuation, JSON characters, line
#: breaks, NUL, escape sequences, unicode and a full-width equals sign.
HOSTILE_NAMES = st.text(
    st.sampled_from(list("ab_;'`\"\\ -=+@()[]{}:,\n\r\t\x00\x1bé∞＝")), min_size=1, max_size=12
)


def file_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time: what a refused
    run must leave as it was."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def browser_dom(page: Path, profile: Path) -> tuple[str, str]:
    """``page`` as a real headless browser (Debian's ``chromium``) builds it: the DOM, and the
    console log (script errors show there as ``Uncaught``)."""
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout, done.stderr


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


def retailer_export(folder: Path, customers: int = 900, seed: int = 4) -> Path:
    """A retailer's purchase log as CSV: customers and purchases with amounts, nothing else.

    Each customer buys at their own rate; the hazard of leaving for good is higher for rare and
    for recently disappointed buyers (a small last basket), so inactivity churn is predictable.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    rate = rng.gamma(2.0, 1 / 20, customers)  # purchases per day, mean 0.1
    basket = rng.lognormal(3.5, 0.4, customers)
    rows = []
    for i in range(customers):
        day = rng.exponential(1 / rate[i]) * rng.uniform()
        while day < 366:
            amount = basket[i] * rng.lognormal(0, 0.5)
            rows.append(
                (f"R{i:05d}", start + pd.Timedelta(days=day), "purchase", round(amount, 2))
            )
            hazard = 0.02 + 0.08 * (rate[i] < 0.06) + 0.06 * (amount < 0.6 * basket[i])
            if rng.uniform() < hazard:
                break
            day += rng.exponential(1 / rate[i])
    events = pd.DataFrame(rows, columns=["customer_id", "timestamp", "event_type", "value"])
    events["timestamp"] = events["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    people = pd.DataFrame(
        {
            "customer_id": [f"R{i:05d}" for i in range(customers)],
            "signup_date": "2023-12-01",
            "store": rng.choice(["north", "south", "online"], customers),
        }
    )
    return write_dataset(folder, customers=people, events=events)


def labelled_snapshot(folder: Path, customers: int = 2000, seed: int = 9) -> Path:
    """An entity table with a churn flag (:func:`churnguard.synth.generate_entity_table`)."""
    return generate_entity_table(folder, customers=customers, seed=seed)


#: The learned effect of the billing follow-up on customers with a failed payment: the odds of
#: churning halve.
HALVED = math.log(0.5)


def write_learned_effects(path: Path, *, promote: bool) -> None:
    """Learned effects where only the billing follow-up is shown to help, and only customers
    with a failed payment: their odds of churning halve."""
    names = [i.name for i in default_interventions()]
    group = {
        "intervention": "billing follow-up",
        "problem": True,
        "treated": 400,
        "holdout": 400,
        "shift": 0.0,
        "log_odds": HALVED,
        "log_odds_se": 0.1,
        "risk_slope": 0.0,
        "centre": -2.0,
        "shown": True,
    }
    quiet = {**group, "problem": False, "log_odds": 0.0, "shown": False}
    path.write_text(
        json.dumps(
            {
                "format": 2,
                "method": "segments",
                "interventions": names,
                "probability_cuts": [],
                "promote": promote,
                "evaluation": {},
                "groups": [group, quiet],
                "segments": [],
                "pooled": [],
            }
        )
    )
