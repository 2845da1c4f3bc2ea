"""The standard five-field cron syntax, as CronJob ``spec.schedule`` uses it.

``minute hour day-of-month month day-of-week`` with ``*``, ``a-b``, ``*/n``,
``a-b/n``, lists, month and weekday names (``jan``, ``mon``; 7 is Sunday too)
and the macros ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily``
``@midnight`` ``@hourly``. As in cron (and the CronJob controller's parser),
when both day fields are restricted a day matches if either does.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()
# (low, high, names offset by low)
_FIELDS = ((0, 59, []), (0, 23, []), (1, 31, []), (1, 12, _MONTHS), (0, 7, _DAYS))
_SEARCH_YEARS = 5


class CronError(ValueError):
    """An unparseable schedule (the message says which part)."""


def _value(text: str, low: int, names: list[str]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + low
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}")
    return int(text)


def _field(text: str, low: int, high: int, names: list[str]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"invalid step {step_text!r} in {part!r}")
            step = int(step_text)
        if rng == "*" or rng == "?":
            start, end = low, high
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, low, names), _value(b, low, names)
        else:
            start = _value(rng, low, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise CronError(f"end of range ({end}) above maximum ({high}): {part}"
                            if end > high else f"beginning of range ({start}) beyond end of "
                            f"range ({end}): {part}")  # fmt: skip
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool
    weekday_star: bool

    def _day_matches(self, t: datetime.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime.datetime) -> datetime.datetime | None:
        """The first matching minute strictly after ``t`` (None within five years)."""
        t = (t + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
        limit = t.year + _SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + datetime.timedelta(days=32)).replace(
                    day=1
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + datetime.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + datetime.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += datetime.timedelta(minutes=1)
            else:
                return t
        return None


def parse(text: str) -> Schedule:
    """A :class:`Schedule`, or :class:`CronError` naming what is wrong."""
    spec = MACROS.get(text.strip().lower(), text.strip())
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    sets = [_field(f, lo, hi, names) for f, (lo, hi, names) in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Schedule(sets[0], sets[1], sets[2], sets[3], weekdays,
                    fields[2] in ("*", "?"), fields[4] in ("*", "?"))  # fmt: skip


def valid_zone(name: str) -> bool:
    try:
        zone(name)
    except (ValueError, KeyError):
        return False
    return True


def zone(name: str | None) -> datetime.tzinfo:
    """``spec.timeZone`` as a tzinfo (UTC when unset), ``KeyError`` if unknown."""
    if not name or name in ("UTC", "Etc/UTC"):
        return datetime.timezone.utc
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise KeyError(name) from None
