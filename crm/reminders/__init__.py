"""Overdue reminders: when each goes out (the schedule), what it says (the emails), and
handing them to Resend and cancelling them there (the dispatcher)."""
