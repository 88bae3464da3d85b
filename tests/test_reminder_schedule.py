"""Pure reminder schedule: offsets, local hour, time zones, DST."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from crm.reminders.schedule import ScheduleError, plan_reminders, validate_offsets


def test_default_offsets_at_local_hour() -> None:
    plan = plan_reminders(date(2026, 1, 10), [7, 14, 30], 9, "America/Chicago")
    assert [(p.sequence, p.offset_days) for p in plan] == [(1, 7), (2, 14), (3, 30)]
    # 09:00 in Chicago in January is 15:00 UTC
    assert plan[0].send_at == datetime(2026, 1, 17, 15, tzinfo=timezone.utc)
    assert plan[2].send_at == datetime(2026, 2, 9, 15, tzinfo=timezone.utc)


def test_daylight_saving_keeps_the_local_hour() -> None:
    plan = plan_reminders(date(2026, 3, 1), [14], 9, "America/Chicago")
    assert plan[0].send_at == datetime(2026, 3, 15, 14, tzinfo=timezone.utc)  # CDT is UTC-5


def test_before_due_offsets_and_ones_already_past_are_dropped() -> None:
    sent = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    plan = plan_reminders(date(2026, 1, 10), [-7, -2, 7], 9, "UTC", sent_at=sent)
    assert [p.offset_days for p in plan] == [-2, 7]
    assert [p.sequence for p in plan] == [1, 2]


@pytest.mark.parametrize("offsets", [[1, 2, 3, 4, 5, 6, 7], [400], [-91]])
def test_bad_offsets_are_refused(offsets: list[int]) -> None:
    with pytest.raises(ScheduleError):
        validate_offsets(offsets)


def test_offsets_are_sorted_and_distinct() -> None:
    assert validate_offsets([30, 7, 14, 7]) == [7, 14, 30]


def test_bad_hour_is_refused() -> None:
    with pytest.raises(ScheduleError):
        plan_reminders(date(2026, 1, 1), [7], 24, "UTC")
