"""When each overdue reminder should go out: pure, no I/O.

A reminder's send time is its offset in days from the due date (negative: before it),
at the business's local send hour, in the business's time zone, as an aware UTC time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

MAX_REMINDERS = 6


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class PlannedReminder:
    sequence: int  # 1 = first (gentlest) reminder
    offset_days: int
    send_at: datetime  # UTC


def validate_offsets(offsets: list[int] | tuple[int, ...]) -> list[int]:
    """Sorted, distinct, at most six, each between 90 days before and 365 after."""
    cleaned = sorted({int(o) for o in offsets})
    if len(cleaned) > MAX_REMINDERS:
        raise ScheduleError(f"at most {MAX_REMINDERS} reminders")
    for o in cleaned:
        if not -90 <= o <= 365:
            raise ScheduleError(f"offset {o} is out of range (-90 to 365 days)")
    return cleaned


def plan_reminders(due: date, offsets: list[int] | tuple[int, ...], send_hour: int, tz_name: str,
                   sent_at: datetime | None = None) -> list[PlannedReminder]:
    """The reminders for an invoice due on `due`; ones that would fall before it was sent are dropped."""
    if not 0 <= send_hour <= 23:
        raise ScheduleError("the send hour is 0 to 23")
    tz = ZoneInfo(tz_name)
    planned: list[PlannedReminder] = []
    for offset in validate_offsets(offsets):
        local_day = due + timedelta(days=offset)
        send_at = datetime.combine(local_day, time(send_hour), tzinfo=tz).astimezone(timezone.utc)
        if sent_at is not None and send_at <= sent_at:
            continue
        planned.append(PlannedReminder(len(planned) + 1, offset, send_at))
    return planned
