"""Schedules for schedule triggers: ``every T`` or a five-field cron subset, in UTC.

* ``every 30s``, ``every 500ms``, ``every 5m``, ``every 2h``: a fixed period (at least 100 ms).
* ``MIN HOUR DOM MONTH DOW``: each field ``*``, ``*/STEP``, ``N``, ``A-B``, ``A-B/STEP`` or a
  comma list of those; DOW 0-6 with 0 = Sunday (7 is Sunday too). As in cron, when both DOM
  and DOW are restricted a day matches if either does. No names (``MON``), no ``L``/``W``/``#``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MIN_PERIOD_MS = 100
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")
SEARCH_DAYS = 366 * 5  # a cron that never fires (Feb 30) is refused, not searched forever


class ScheduleError(ValueError):
    """A schedule that cannot be parsed, with what is wrong."""


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:/(\d{1,2}))?", part)
        if match is None:
            raise ScheduleError(f"cron {_NAMES[index]} field {text[:20]!r}: use *, N, A-B, */S or A-B/S lists")
        step = int(match[4]) if match[4] else 1
        if match[1] == "*":
            start, end = low, high
        else:
            start = int(match[2])
            end = int(match[3]) if match[3] else (high if match[4] else start)
        if not (low <= start <= end <= high) or step < 1:
            raise ScheduleError(f"cron {_NAMES[index]} field {text[:20]!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    period_ms: int = 0  # > 0: "every T"
    fields: tuple[frozenset[int], ...] = ()
    dom_any: bool = True
    dow_any: bool = True

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = text.strip()
        every = re.fullmatch(r"every\s+(\d{1,9})\s*(ms|s|m|h)", text)
        if every is not None:
            period = int(every[1]) * _UNITS[every[2]]
            if period < MIN_PERIOD_MS:
                raise ScheduleError(f"a period is at least {MIN_PERIOD_MS} ms")
            return cls(period_ms=period)
        parts = text.split()
        if len(parts) != 5:
            raise ScheduleError("a schedule is 'every 30s' (ms, s, m, h) or five cron fields: MIN HOUR DOM MONTH DOW")
        schedule = cls(fields=tuple(_field(part, i) for i, part in enumerate(parts)),
                       dom_any=parts[2] == "*", dow_any=parts[4] == "*")  # fmt: skip
        schedule.next_after(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # refuses one that never fires
        return schedule

    def _day_matches(self, day: dt.datetime) -> bool:
        dom = day.day in self.fields[2]
        dow = (day.isoweekday() % 7) in self.fields[4]
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first firing strictly after ``now`` (UTC)."""
        if self.period_ms:
            return now + dt.timedelta(milliseconds=self.period_ms)
        minutes, hours, _, months, _ = self.fields
        start = now.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for offset in range(SEARCH_DAYS):
            if day.month in months and self._day_matches(day):
                for hour in sorted(hours):
                    for minute in sorted(minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day = start.replace(hour=0, minute=0) + dt.timedelta(days=offset + 1)
        raise ScheduleError("this cron schedule never fires")

    def seconds_until_next(self, now: dt.datetime) -> float:
        return max(0.0, (self.next_after(now) - now).total_seconds())
