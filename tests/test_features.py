"""Point-in-time features: hand-checked values and the no-peeking invariants."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import churnguard as cg
from churnguard.config import FeaturesConfig
from churnguard.errors import ConfigError, LeakageError
from conftest import write_dataset

T = dt.datetime(2025, 3, 1)


def _features(folder: Path, as_of, **kwargs) -> pd.DataFrame:
    dataset = cg.load_dataset(folder)
    frame = cg.build_features(dataset, as_of=as_of, **kwargs).to_pandas()
    return frame.set_index(["customer_id", "as_of"])


def _spread(gaps: list[int]) -> float:
    mean = sum(gaps) / len(gaps)
    return (sum(g * g for g in gaps) / len(gaps) - mean * mean) ** 0.5


def test_every_feature_of_a_hand_written_shop_matches_the_hand_computed_value(tmp_path, shop):
    frame = _features(write_dataset(tmp_path, **shop), [T])
    a = frame.loc[("A", T)]
    expected_a = {
        "tenure_days": 304.0,  # 2024-05-01 .. 2025-03-01
        "login_count_7d": 1.0,  # 02-27 only; the login at T itself is not before T
        "login_count_30d": 2.0,  # 02-20, 02-27
        "login_count_90d": 3.0,
        "login_trend_30d": 1.0,  # 2 now against 1 (01-15) in the 30 days before
        "login_trend_7d": 0.0,  # 1 in [02-22, 03-01) against 1 (02-20) in [02-15, 02-22)
        "purchase_count_30d": 1.0,
        "purchase_value_sum_30d": 30.0,
        "purchase_value_sum_90d": 80.0,
        "purchase_value_mean_90d": 40.0,
        "purchase_trend_30d": 0.0,  # 1 against 1
        "nps_count_90d": 1.0,
        "last_nps_score": 3.0,
        "nps_score_mean_90d": 3.0,
        "days_since_last_nps": 27.5,
        "days_since_last_login": 1.5,
        "days_since_last_purchase": 3.5,
        "days_since_last_support_ticket": 0.75,
        "days_since_last_activity": 0.75,
        "support_ticket_count_7d": 1.0,
        "support_ticket_trend_7d": float("nan"),  # no ticket in the 7 days before
        "active_days_7d": 3.0,  # 02-25, 02-27, 02-28
        "active_days_30d": 5.0,  # 02-01, 02-20, 02-25, 02-27, 02-28
        # 7 activities from 01-10 12:00 to 02-28 06:00: 6 gaps
        "activity_gap_mean_90d": (49 - 0.25) / 6,
        "subscription_active": 1.0,
        "mrr": 20.0,
        "plan": "basic",
        "subscription_tenure_days": 304.0,
        "plan_change_count_90d": 1.0,
        "downgrade_count_90d": 1.0,
        "segment": "smb",
        "seats": 3.0,
        # the whole history: active on 2024-06-01, 01-10, 01-15, 02-01, 02-20, 02-25, 02-27, 02-28
        "active_days_total": 8.0,
        "days_since_first_activity": 272.5,  # 2024-06-01 12:00
        "activity_gap_mean_total": 272 / 7,  # 7 gaps of whole days over 272 days
        # in the last 90 days: 01-10 (its day before is older), 01-15 … 02-28
        "activity_gap_sd_90d": _spread([5, 17, 19, 5, 2, 1]),
        "purchase_count_total": 2.0,
        "purchase_value_sum_total": 80.0,
        "purchase_value_mean_total": 40.0,
        # three customers are too few to fit how customers buy and drop out
        "bgnbd_p_alive": float("nan"),
        "bgnbd_p_active_30d": float("nan"),
    }
    for name, value in expected_a.items():
        if isinstance(value, str):
            assert a[name] == value, name
        elif value != value:
            assert pd.isna(a[name]), name
        else:
            assert a[name] == pytest.approx(value), name

    b = frame.loc[("B", T)]
    assert b["login_count_90d"] == 1.0  # 2024-12-01 00:00 is exactly T - 90 days: inside
    assert b["login_count_30d"] == 0.0
    assert b["login_trend_90d"] != b["login_trend_90d"]  # nothing in the 90 days before
    assert b["purchase_value_sum_90d"] == 0.0
    assert pd.isna(b["days_since_last_purchase"])  # the purchase after T is invisible
    assert pd.isna(b["last_nps_score"])
    assert b["subscription_active"] == 1.0  # ends 03-15, after T: still active at T
    assert b["tenure_days"] == 106.0
    assert ("C", T) not in frame.index  # signs up after T: not in the population


def test_days_with_activity_are_counted_across_blocks_and_before_1970(tmp_path):
    # Days are counted from 63-day bitmasks: these days fall in blocks -1 (1969-12-20, 12-31),
    # 0 (1970-01-01, 02-21) and 1 (03-05, 03-06, days 63 and 64); two logins share a day.
    events = pd.DataFrame(
        [
            ("a", "1969-12-20 10:00:00", "login", None),
            ("a", "1969-12-20 11:00:00", "login", None),
            ("a", "1969-12-31 23:00:00", "login", None),
            ("a", "1970-01-01 01:00:00", "purchase", 12.0),
            ("a", "1970-02-21 08:00:00", "login", None),
            ("a", "1970-03-05 08:00:00", "login", None),
            ("a", "1970-03-06 08:00:00", "login", None),
        ],
        columns=["customer_id", "timestamp", "event_type", "value"],
    )
    customers = pd.DataFrame({"customer_id": ["a"], "signup_date": ["1969-12-01"]})
    as_of = dt.datetime(1970, 4, 1)
    early = dt.datetime(1970, 3, 5)  # day 63
    folder = write_dataset(tmp_path, customers=customers, events=events)
    together = _features(folder, [early, as_of])
    a = together.loc[("a", as_of)]
    assert a["active_days_total"] == 6.0  # days -12, -1, 0, 51, 63, 64
    assert a["days_since_first_activity"] == pytest.approx(101 + 14 / 24)  # from 12-20 10:00
    assert a["activity_gap_mean_total"] == pytest.approx((64 - (-12)) / 5)
    before = together.loc[("a", early)]
    assert before["active_days_total"] == 4.0  # day 63 is the as-of date itself: not before


def test_several_as_of_dates_in_one_pass_equal_one_date_at_a_time(tmp_path, shop):
    folder = write_dataset(tmp_path, **shop)
    dates = [dt.datetime(2025, 1, 1), dt.datetime(2025, 2, 14), T, dt.datetime(2025, 4, 1)]
    together = _features(folder, dates)
    apart = pd.concat([_features(folder, [d]) for d in dates])
    assert together.index.is_monotonic_increasing  # ordered by customer_id, then as_of
    pd.testing.assert_frame_equal(together, apart.sort_index())


def test_activity_is_read_from_the_activity_event_types_alone(tmp_path, shop):
    folder = write_dataset(tmp_path, **shop)
    everything = _features(folder, [T])
    logins = _features(folder, [T], activity_events=["login"])
    assert everything.loc[("A", T), "active_days_30d"] == 5.0
    assert logins.loc[("A", T), "active_days_30d"] == 2.0  # logins on 02-20 and 02-27 only
    # every type counts by default, so the events go unfiltered; filtered, they are the same
    dataset = cg.load_dataset(folder)
    dataset.event_types = None  # as when validation found too many types to list
    filtered = cg.build_features(dataset, as_of=[T]).to_pandas()
    pd.testing.assert_frame_equal(filtered.set_index(["customer_id", "as_of"]), everything)


def test_a_customer_active_only_before_the_widest_window_has_counts_of_zero_and_a_trend(
    tmp_path,
):
    events = pd.DataFrame(
        [
            ("a", "2024-10-29 09:00:00", "login", None),  # 123 days before T: only in the trend
            ("b", "2025-02-20 09:00:00", "login", None),
        ],
        columns=["customer_id", "timestamp", "event_type", "value"],
    )
    customers = pd.DataFrame({"customer_id": ["a", "b"], "signup_date": ["2024-01-01"] * 2})
    a = _features(write_dataset(tmp_path, customers=customers, events=events), [T]).loc[("a", T)]
    assert a["login_count_90d"] == 0.0 and a["login_count_30d"] == 0.0
    assert a["login_trend_90d"] == -1.0  # none now against one in the 90 days before
    assert pd.isna(a["login_trend_30d"])  # none in either 30 days


def test_the_latest_survey_answer_skips_surveys_sent_without_one(tmp_path):
    """A survey row without a value (sent, not answered) is the latest survey, not the latest
    answer: the score stays the answer before it, at each date of one pass."""
    events = [
        ("c0", "2025-01-10 00:00:00", "nps", 7.0),
        ("c0", "2025-02-10 00:00:00", "nps", None),
        ("c1", "2025-01-20 00:00:00", "nps", 4.0),
    ]
    folder = write_dataset(tmp_path, **_frames(events))
    first, second = dt.datetime(2025, 2, 1), dt.datetime(2025, 3, 1)
    frame = _features(folder, [first, second])
    assert frame.loc[("c0", first), "last_nps_score"] == 7.0
    assert frame.loc[("c0", second), "last_nps_score"] == 7.0
    assert frame.loc[("c0", second), "days_since_last_nps"] == 19.0  # the unanswered one
    assert frame.loc[("c1", second), "last_nps_score"] == 4.0


def test_outcome_like_attribute_is_refused_unless_allowed(tmp_path, shop):
    shop["customers"]["churned_flag"] = [0, 1, 0]
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop))
    with pytest.raises(LeakageError, match="column 'churned_flag': looks like the churn outcome"):
        cg.plan_features(dataset)
    allowed = cg.plan_features(dataset, config=FeaturesConfig(allow_leaky=("churned_flag",)))
    assert "churned_flag" in allowed.names
    excluded = cg.plan_features(dataset, config=FeaturesConfig(exclude=("churned_flag", "seats")))
    assert "churned_flag" not in excluded.names and "seats" not in excluded.names


def test_each_feature_has_a_description_and_unknown_activity_types_are_refused(tmp_path, shop):
    dataset = cg.load_dataset(write_dataset(tmp_path, **shop))
    plan = cg.plan_features(dataset)
    assert all(spec.description for spec in plan.specs)
    assert plan.descriptions()["login_count_30d"] == "login events in the last 30 days"
    with pytest.raises(ConfigError, match="'logins', which is not an event type"):
        cg.plan_features(dataset, activity_events=["logins"])


# --- property: nothing at or after T moves a feature at T -----------------------------------

_TYPES = ["login", "purchase", "nps"]
_START = dt.datetime(2024, 9, 1)


def _event(draw_day: int, seconds: int, kind: int, customer: int, value: float) -> tuple:
    when = _START + dt.timedelta(days=draw_day, seconds=seconds)
    typ = _TYPES[kind]
    return (f"c{customer}", when.isoformat(sep=" "), typ, None if typ == "login" else value)


_events = st.lists(
    st.builds(
        _event,
        st.integers(0, 300),
        st.integers(0, 86_399),
        st.integers(0, 2),
        st.integers(0, 4),
        st.floats(0, 10, allow_nan=False).map(lambda v: round(v, 2)),
    ),
    min_size=1,
    max_size=40,
)


# One early event of each type, so both datasets compared have the same feature columns (the
# column set follows the event types and value-carrying types found in the data).
_BASE = [
    ("c4", "2024-08-02 00:00:00", "login", None),
    ("c4", "2024-08-02 00:00:00", "purchase", 1.0),
    ("c4", "2024-08-02 00:00:00", "nps", 5.0),
]


def _frames(events: list[tuple]) -> dict[str, pd.DataFrame]:
    events = _BASE + events
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(5)],
            "signup_date": ["2024-08-01"] * 5,
        }
    )
    frame = pd.DataFrame(events, columns=["customer_id", "timestamp", "event_type", "value"])
    # The contract refuses exact duplicate rows; the properties are about distinct events.
    return {"customers": customers, "events": frame.drop_duplicates()}


def test_trends_count_each_earlier_window_at_each_date_built_together(tmp_path):
    # windows 30, 60 and 90 days: the trends of 60 and 90 days read 120- and 180-day counts,
    # both older than the widest window, at two dates built in one pass
    before = [40, 100, 150]  # days before T, at 09:00
    events = pd.DataFrame(
        {
            "customer_id": "a",
            "timestamp": [T - dt.timedelta(days=d) + dt.timedelta(hours=9) for d in before],
            "event_type": "login",
            "value": None,
        }
    )
    customers = pd.DataFrame({"customer_id": ["a"], "signup_date": ["2024-01-01"]})
    folder = write_dataset(tmp_path, customers=customers, events=events)
    earlier = T - dt.timedelta(days=30)
    config = FeaturesConfig(windows=(30, 60, 90))
    frame = _features(folder, [earlier, T], config=config)
    trends = ["login_trend_30d", "login_trend_60d", "login_trend_90d"]
    # at T: 0 | 1 in the last 30 | 60 days against 1 | 1 | 2 in as many days before
    assert frame.loc[("a", T), trends].tolist() == [-1.0, 0.0, -0.5]
    # 30 days before: 1 | 1 | 2 in the last 30 | 60 | 90 days against 0 | 2 | 1 before
    at_earlier = frame.loc[("a", earlier), trends]
    assert pd.isna(at_earlier.iloc[0]) and at_earlier.iloc[1:].tolist() == [-0.5, 1.0]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=_events, after=_events, cut_day=st.integers(30, 250))
def test_events_at_or_after_the_as_of_date_never_change_features(
    tmp_path_factory, before, after, cut_day
):
    as_of = _START + dt.timedelta(days=cut_day)
    past = [e for e in before if dt.datetime.fromisoformat(e[1]) < as_of]
    future = [e for e in after if dt.datetime.fromisoformat(e[1]) >= as_of]
    future.append(("c0", as_of.isoformat(sep=" "), "purchase", 99.0))  # exactly at T
    root = tmp_path_factory.mktemp("pit")
    only_past = _features(write_dataset(root / "a", **_frames(past)), [as_of])
    with_future = _features(write_dataset(root / "b", **_frames(past + future)), [as_of])
    pd.testing.assert_frame_equal(only_past, with_future)


@settings(max_examples=15, deadline=None)
@given(
    events=_events,
    days=st.lists(st.integers(20, 320), min_size=2, max_size=4, unique=True),
    windows=st.sampled_from([(7, 30, 90), (7, 60, 90), (5, 20, 40, 50)]),
)
def test_one_pass_over_random_dates_equals_separate_passes(
    tmp_path_factory, events, days, windows
):
    root = tmp_path_factory.mktemp("multi")
    folder = write_dataset(root, **_frames(events))
    dates = [_START + dt.timedelta(days=d) for d in days]
    config = FeaturesConfig(windows=windows)  # the last two: trends older than the widest
    together = _features(folder, dates, config=config)
    apart = pd.concat([_features(folder, [d], config=config) for d in sorted(dates)])
    pd.testing.assert_frame_equal(together, apart.sort_index())


def test_snapshot_data_without_events_gives_every_customer_its_attributes(tmp_path):
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "contract": ["monthly", "yearly", "monthly"],
            "monthly_charges": [70.5, 20.0, 99.9],
        }
    )
    labels = pd.DataFrame({"customer_id": ["a", "b"], "churned": [1, 0]})
    dataset = cg.load_dataset(
        write_dataset(tmp_path, customers=customers, labels=labels), definition="labels"
    )
    frame = cg.build_features(dataset, as_of=["2025-01-01"]).to_pandas()
    assert list(frame.columns) == [
        "customer_id",
        "as_of",
        "tenure_days",
        "contract",
        "monthly_charges",
    ]
    assert list(frame.customer_id) == ["a", "b", "c"]
    assert list(frame.monthly_charges) == [70.5, 20.0, 99.9]
