"""Business-hours clock for SLA targets: only working time counts.

Settings (app config, all optional):
  BUSINESS_HOURS "09:00-18:00", BUSINESS_DAYS [0..4] (Mon=0), BUSINESS_TIMEZONE (default
  BABEL_DEFAULT_TIMEZONE), HOLIDAY_COUNTRY "JP" (public holidays from the ``holidays`` package,
  so a Golden Week or Obon gap does not count against the team), SLA_FIRST_RESPONSE_MINUTES,
  SLA_RESOLUTION_MINUTES (business minutes), SLA_WARN_RATIO (share of a target after which a
  ticket is "about to breach"), SLA_PAUSE_WHEN_PENDING (default true: the resolution clock stops
  while a ticket is pending, waiting for its customer, as it does in most desks; the first
  response clock never stops).

``BusinessClock.seconds_between`` is O(1) after a per-clock cache of business days, so the
dashboard can time thousands of tickets per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULTS = {
    "BUSINESS_HOURS": "09:00-18:00",
    "BUSINESS_DAYS": [0, 1, 2, 3, 4],
    "HOLIDAY_COUNTRY": "JP",
    "SLA_FIRST_RESPONSE_MINUTES": 60,
    "SLA_RESOLUTION_MINUTES": 2 * 9 * 60,  # two business days
    "SLA_WARN_RATIO": 0.8,
    "SLA_PAUSE_WHEN_PENDING": True,
}

_EPOCH = date(2000, 1, 1)  # business days are counted from here; only differences matter


def setting(config, key: str):
    return config.get(key, DEFAULTS.get(key))


def _parse_hours(spec: str) -> tuple[time, time]:
    try:
        start_s, end_s = spec.split("-")
        start = time.fromisoformat(start_s.strip())
        end = time.fromisoformat(end_s.strip())
    except ValueError:
        raise ValueError(f"BUSINESS_HOURS must look like 09:00-18:00, got {spec!r}") from None
    if end <= start:
        raise ValueError("BUSINESS_HOURS must end after it starts")
    return start, end


@lru_cache(maxsize=16)
def _holidays(country: str, year: int) -> frozenset[date]:
    if not country:
        return frozenset()
    import holidays

    return frozenset(holidays.country_holidays(country, years=year).keys())


@lru_cache(maxsize=256)
def _year_prefix(country: str, days: frozenset[int], year: int) -> tuple[int, ...]:
    """prefix[i] = business days in the year before its i-th day; cached across requests."""
    hol = _holidays(country, year)
    prefix = [0]
    cur = date(year, 1, 1)
    while cur.year == year:
        prefix.append(prefix[-1] + (1 if cur.weekday() in days and cur not in hol else 0))
        cur += timedelta(days=1)
    return tuple(prefix)


@lru_cache(maxsize=256)
def _days_before_year(country: str, days: frozenset[int], year: int) -> int:
    if year <= _EPOCH.year:
        return 0
    return _days_before_year(country, days, year - 1) + _year_prefix(country, days, year - 1)[-1]


@dataclass(frozen=True)
class BusinessClock:
    tz: ZoneInfo
    start: time
    end: time
    days: frozenset[int]
    country: str
    # date -> (business seconds before that day, is it a business day); filled as we go.
    _days: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    # UTC quarter hour -> (its day's entry in _days, its start's local second of the day - opening).
    _slots: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    _open_s: int = field(default=0, compare=False, hash=False, repr=False)
    _day_s: int = field(default=0, compare=False, hash=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_open_s", self.start.hour * 3600 + self.start.minute * 60)
        object.__setattr__(self, "_day_s", self.end.hour * 3600 + self.end.minute * 60 - self._open_s)

    @classmethod
    def from_config(cls, config) -> BusinessClock:
        start, end = _parse_hours(setting(config, "BUSINESS_HOURS"))
        tzname = config.get("BUSINESS_TIMEZONE") or config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Tokyo"
        return cls(ZoneInfo(tzname), start, end, frozenset(setting(config, "BUSINESS_DAYS")),
                   setting(config, "HOLIDAY_COUNTRY") or "")

    @property
    def day_seconds(self) -> int:
        return self._day_s

    def is_business_day(self, d: date) -> bool:
        return d.weekday() in self.days and d not in _holidays(self.country, d.year)

    def _business_days_before(self, d: date) -> int:
        """Business days in [_EPOCH year, d): cached per-year prefix sums keep this O(1)."""
        return (_days_before_year(self.country, self.days, d.year)
                + _year_prefix(self.country, self.days, d.year)[(d - date(d.year, 1, 1)).days])

    def cumulative(self, at: datetime) -> int:
        """Business seconds from the epoch to ``at``; differences give elapsed business time.
        Hot path (thousands of tickets per report), hence the per-day cache."""
        return self._cumulative_local(at.astimezone(self.tz))

    def cumulative_ts(self, ts: float) -> int:
        """``cumulative`` for a UTC epoch timestamp (reports fetch epochs: no datetime parsing).
        Today's zones have their offsets, transitions and midnights on quarter hours, so a UTC
        quarter hour lies in one local day at one offset: converted once, then only arithmetic."""
        slot, into = divmod(int(ts), 900)
        info = self._slots.get(slot)
        if info is None:
            local = datetime.fromtimestamp(slot * 900, self.tz)
            info = self._slots[slot] = (self._day(local.date()),
                                        local.hour * 3600 + local.minute * 60 - self._open_s)
        (base, open_day), start = info
        return self._in_day(base, open_day, start + into)

    def _day(self, d: date) -> tuple[int, bool]:
        info = self._days.get(d)
        if info is None:
            info = self._days[d] = (self._business_days_before(d) * self.day_seconds, self.is_business_day(d))
        return info

    def _in_day(self, base: int, open_day: bool, secs: int) -> int:
        """``base`` plus the business seconds of a day up to ``secs`` after opening time."""
        if not open_day:
            return base
        return base + (0 if secs < 0 else secs if secs < self._day_s else self._day_s)

    def _cumulative_local(self, local: datetime) -> int:
        return self._in_day(*self._day(local.date()),
                            local.hour * 3600 + local.minute * 60 + local.second - self._open_s)

    def seconds_between(self, a: datetime, b: datetime) -> int:
        if b <= a:
            return 0
        return self.cumulative(b) - self.cumulative(a)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        return self.is_business_day(local.date()) and self.start <= local.time() < self.end

    def next_open(self, at: datetime) -> datetime | None:
        """When the desk opens next (``at`` itself while it is open; None without business days
        in the next two years)."""
        if self.is_open(at):
            return at
        local = at.astimezone(self.tz)
        first = 0 if local.time() < self.start else 1
        for ahead in range(first, 2 * 366):
            d = local.date() + timedelta(days=ahead)
            if self.is_business_day(d):
                return datetime.combine(d, self.start, tzinfo=self.tz)
        return None


@dataclass(frozen=True)
class Targets:
    first_response_s: int
    resolution_s: int
    warn_ratio: float
    pause_when_pending: bool = True

    @classmethod
    def from_config(cls, config) -> Targets:
        return cls(int(setting(config, "SLA_FIRST_RESPONSE_MINUTES")) * 60,
                   int(setting(config, "SLA_RESOLUTION_MINUTES")) * 60,
                   float(setting(config, "SLA_WARN_RATIO")),
                   bool(setting(config, "SLA_PAUSE_WHEN_PENDING")))


def state(elapsed_s: int, target_s: int, warn_ratio: float) -> str:
    """ok / at_risk / breached for an elapsed business time against a target."""
    if elapsed_s >= target_s:
        return "breached"
    if elapsed_s >= target_s * warn_ratio:
        return "at_risk"
    return "ok"


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank-with-interpolation percentile (p in 0..100); None for no data."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


__all__ = ["BusinessClock", "Targets", "percentile", "state"]
