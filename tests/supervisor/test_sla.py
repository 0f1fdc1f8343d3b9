"""The business-hours clock: weekends, nights and Japanese public holidays do not count."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from helpdesk.services.sla import BusinessClock, percentile, state
from tests.supervisor.builders import jst


@pytest.fixture
def clock():
    return BusinessClock.from_config({"BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo"})


def test_same_day_inside_hours(clock):
    assert clock.seconds_between(jst(2026, 3, 2, 9, 0), jst(2026, 3, 2, 9, 30)) == 30 * 60


def test_night_and_weekend_do_not_count(clock):
    # Fri 17:00 -> Mon 10:00 = 1 h Friday + 1 h Monday
    assert clock.seconds_between(jst(2026, 3, 6, 17), jst(2026, 3, 9, 10)) == 2 * 3600


def test_japanese_public_holiday_does_not_count(clock):
    # Mon 23 Nov 2026 is Labour Thanksgiving Day: Fri 17:00 -> Tue 10:00 = 2 h
    assert not clock.is_business_day(jst(2026, 11, 23, 12).astimezone(clock.tz).date())
    assert clock.seconds_between(jst(2026, 11, 20, 17), jst(2026, 11, 24, 10)) == 2 * 3600


def test_golden_week_is_skipped(clock):
    # Thu 30 Apr 2026 18:00 -> Thu 7 May 09:30: 1-2 May are Fri/Sat... 4-6 May holidays
    elapsed = clock.seconds_between(jst(2026, 4, 30, 18), jst(2026, 5, 7, 9, 30))
    assert elapsed == 9 * 3600 + 30 * 60  # only Fri 1 May counts in full, then 30 min on the 7th


def test_before_opening_counts_from_opening(clock):
    assert clock.seconds_between(jst(2026, 3, 2, 7), jst(2026, 3, 2, 9, 15)) == 15 * 60


def test_reversed_interval_is_zero(clock):
    assert clock.seconds_between(jst(2026, 3, 2, 10), jst(2026, 3, 2, 9)) == 0


def test_custom_hours_and_no_holidays():
    c = BusinessClock.from_config({"BUSINESS_HOURS": "10:00-12:00", "BUSINESS_DAYS": [0, 1, 2, 3, 4, 5, 6],
                                   "HOLIDAY_COUNTRY": "", "BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo"})
    assert c.seconds_between(jst(2026, 11, 22, 0), jst(2026, 11, 24, 0)) == 4 * 3600


def test_bad_hours_setting_is_refused():
    with pytest.raises(ValueError):
        BusinessClock.from_config({"BUSINESS_HOURS": "18:00-09:00"})


def test_percentile_and_state():
    assert percentile([], 50) is None
    assert percentile([30, 60, 150], 50) == 60
    assert percentile([30, 60, 150], 90) == pytest.approx(132)
    assert state(50, 60, 0.8) == "at_risk" and state(60, 60, 0.8) == "breached" and state(10, 60, 0.8) == "ok"


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin",
                                  "America/New_York", "Australia/Lord_Howe"])
def test_epoch_timestamps_give_the_same_business_time_as_datetimes(zone):
    """The reports' epoch shortcut (cached per UTC quarter hour) agrees with the datetime path
    every 7 minutes 13 seconds across a year: odd offsets, daylight saving (Lord Howe moves by
    half an hour), and a working day that opens at midnight, where a slot in the wrong day shows."""
    config = {"BUSINESS_TIMEZONE": zone, "BUSINESS_HOURS": "00:00-12:00", "HOLIDAY_COUNTRY": ""}
    clock, reference = BusinessClock.from_config(config), BusinessClock.from_config(config)
    start = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp())
    for ts in range(start, start + 366 * 86400, 433):
        at = datetime.fromtimestamp(ts, timezone.utc)
        assert clock.cumulative_ts(ts + 0.25) == reference.cumulative(at), at


@pytest.mark.parametrize("at, opens", [
    (jst(2026, 3, 9, 7), jst(2026, 3, 9, 9)),          # Monday before opening: today
    (jst(2026, 3, 9, 10), jst(2026, 3, 9, 10)),        # open now
    (jst(2026, 3, 9, 18), jst(2026, 3, 10, 9)),        # closing time: tomorrow
    (jst(2026, 3, 13, 22), jst(2026, 3, 16, 9)),       # Friday night: Monday
    (jst(2026, 3, 19, 20), jst(2026, 3, 23, 9)),       # Thursday night before 春分の日 (Fri): Monday
    (jst(2026, 4, 28, 19), jst(2026, 4, 30, 9)),       # 昭和の日 (Wed 29 April) is skipped
])
def test_next_opening(clock, at, opens):
    assert clock.next_open(at) == opens


def test_no_opening_without_business_days():
    clock = BusinessClock.from_config({"BUSINESS_DAYS": []})
    assert clock.next_open(jst(2026, 3, 9, 10)) is None
