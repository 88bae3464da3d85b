"""When each overdue reminder should go out: pure, no I/O.

A reminder's send time is its offset in days from the due date (negative: before it),
at the business's local send hour, in the business's time zone, as an aware UTC time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

# The one home of the reminder limits: the Settings page's input check (crm/config/integrations.py)
# and the planner both read them through offsets_problem.
MAX_REMINDERS = 6
EARLIEST_OFFSET_DAYS = -90
LATEST_OFFSET_DAYS = 365


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class PlannedReminder:
    sequence: int  # 1 = first (gentlest) reminder
    offset_days: int
    send_at: datetime  # UTC


def offsets_problem(offsets: list[int] | tuple[int, ...]) -> str | None:
    """What is wrong with these offsets, in the owner's words; None when they are fine."""
    if len(offsets) > MAX_REMINDERS:
        return f"At most {MAX_REMINDERS} reminders."
    if len(set(offsets)) != len(offsets):
        return "Each offset only once."
    if any(not EARLIEST_OFFSET_DAYS <= o <= LATEST_OFFSET_DAYS for o in offsets):
        return f"Offsets must be between {EARLIEST_OFFSET_DAYS} and {LATEST_OFFSET_DAYS} days."
    return None


def validate_offsets(offsets: list[int] | tuple[int, ...]) -> list[int]:
    """Sorted and distinct (a stored or environment list may repeat one; the Settings page
    refuses that), then within the limits above."""
    cleaned = sorted({int(o) for o in offsets})
    problem = offsets_problem(cleaned)
    if problem:
        raise ScheduleError(problem)
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
