"""Demo data for a small service business: `python -m crm seed-demo` (a tool, not a rule).

`generate` is pure (a fixed random seed and a reference time give the same business
every time); `load` writes it once: a marker in crm.settings makes a second run a no-op.
About 40 customers, 300 jobs and 400 invoices over six months, with payment delays
from minutes to months that shrink over time (the "14 days to 14 minutes" story).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import psycopg

from crm.money.amounts import percent_of
from db import audit
from db import demo_rows as rows

Conn = psycopg.Connection[Any]
MARKER = "demo.seeded_at"

_FIRST = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Mason", "Sophia", "Lucas", "Mia", "Ethan", "Harper",
          "Logan", "Ella", "James", "Aria", "Henry", "Chloe", "Jack", "Grace", "Owen"]
_LAST = ["Garcia", "Nguyen", "Patel", "Smith", "Johnson", "Brown", "Miller", "Davis", "Lopez", "Wilson",
         "Anderson", "Thomas", "Moore", "Martin", "Lee", "Clark", "Lewis", "Walker", "Hall", "Young"]
_STREETS = ["Maple Ave", "Oak St", "Cedar Ln", "Pine Rd", "Elm Dr", "Birch Ct", "Willow Way", "Lakeview Blvd"]
_WORK = [
    ("AC tune-up", [("Seasonal AC maintenance", 1, 14900), ("Filter replacement", 2, 2500)]),
    ("Furnace repair", [("Diagnostic visit", 1, 8900), ("Ignitor replacement", 1, 18500),
                        ("Labor (hours)", 2, 11000)]),
    ("Water heater install", [("50 gal water heater", 1, 129900), ("Installation labor", 1, 45000),
                              ("Haul-away", 1, 7500)]),
    ("Drain cleaning", [("Main line hydro-jet", 1, 32500)]),
    ("Deep clean", [("Whole-home deep clean", 1, 28000), ("Oven interior", 1, 4500)]),
    ("Leak repair", [("Emergency call-out", 1, 15000), ("Pipe section replacement", 3, 6500)]),
    ("Duct cleaning", [("Duct cleaning (per vent)", 12, 3500)]),
    ("Thermostat install", [("Smart thermostat", 1, 24900), ("Installation", 1, 9500)]),
]


@dataclass
class DemoInvoice:
    kind: str
    status: str
    lines: list[tuple[str, int, int]]
    created_at: datetime
    sent_at: datetime | None
    due_date: date | None
    paid_at: datetime | None
    opened: bool = False
    clicked: bool = False
    reminders_sent: int = 0

    @property
    def total(self) -> int:
        return sum(q * u for _, q, u in self.lines)


@dataclass
class DemoJob:
    title: str
    status: str
    created_at: datetime
    invoices: list[DemoInvoice] = field(default_factory=list)


@dataclass
class DemoCustomer:
    name: str
    email: str
    phone: str
    address: str
    opt_out: bool
    jobs: list[DemoJob] = field(default_factory=list)


def _payment_delay(rng: random.Random, age_fraction: float) -> timedelta:
    """Log-uniform from minutes to months; recent invoices (age_fraction near 0) pay faster."""
    roll = rng.random()
    if roll < 0.08:
        return timedelta(days=400)  # has not paid (yet): open, and overdue after its terms
    # Most customers pay faster as the business moved to pay links; some stay slow.
    slow = 1.0 if roll < 0.22 else 0.25 + 0.75 * age_fraction
    minutes = math.exp(rng.uniform(math.log(5), math.log(5) + slow * (math.log(90 * 24 * 60) - math.log(5))))
    return timedelta(minutes=minutes)


def _invoice(rng: random.Random, kind: str, lines: list[tuple[str, int, int]], created: datetime,
             now: datetime, terms_days: int) -> DemoInvoice:
    age = (now - created) / timedelta(days=182)
    if rng.random() < 0.3 and (now - created) < timedelta(days=4):
        return DemoInvoice(kind, "draft", lines, created, None, None, None)
    sent = created + timedelta(minutes=rng.uniform(5, 240))
    due = (sent + timedelta(days=terms_days)).date()
    roll = rng.random()
    if roll < 0.03:
        return DemoInvoice(kind, "void", lines, created, sent, due, None)
    if roll < 0.05 and age > 0.3:
        return DemoInvoice(kind, "uncollectible", lines, created, sent, due, None, opened=True, reminders_sent=3)
    paid = sent + _payment_delay(rng, age)
    clicked = rng.random() < 0.85
    if paid > now:
        overdue_days = (now.date() - due).days
        reminders = sum(1 for offset in (7, 14, 30) if overdue_days >= offset)
        return DemoInvoice(kind, "open", lines, created, sent, due, None,
                           opened=rng.random() < 0.7, clicked=rng.random() < 0.3, reminders_sent=reminders)
    late_days = (paid.date() - due).days
    reminders = sum(1 for offset in (7, 14, 30) if late_days >= offset)
    return DemoInvoice(kind, "paid", lines, created, sent, due, paid, opened=True, clicked=clicked,
                       reminders_sent=reminders)


def generate(now: datetime, seed: int = 7, customers: int = 40, jobs: int = 300,
             terms_days: int = 14) -> list[DemoCustomer]:
    rng = random.Random(seed)
    people: list[DemoCustomer] = []
    for i in range(customers):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        people.append(DemoCustomer(
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}{i}@example.com",
            phone=f"(555) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
            address=f"{rng.randint(100, 9999)} {rng.choice(_STREETS)}",
            opt_out=rng.random() < 0.05,
        ))
    for _ in range(jobs):
        who = rng.choice(people)
        title, lines = rng.choice(_WORK)
        created = now - timedelta(days=rng.uniform(0, 182))
        job = DemoJob(title=title, status="scheduled", created_at=created)
        total = sum(q * u for _, q, u in lines)
        if rng.random() < (0.9 if total > 40000 else 0.15):
            # Deposit up front, the balance on completion.
            half = total // 2
            job.invoices.append(_invoice(rng, "deposit", [(f"Deposit: {title}", 1, half)], created, now, terms_days))
            final_created = created + timedelta(days=rng.uniform(1, 10))
            if final_created < now:
                job.invoices.append(_invoice(rng, "final", [(f"Balance: {title}", 1, total - half)],
                                             final_created, now, terms_days))
        elif rng.random() < 0.93:
            job.invoices.append(_invoice(rng, "standard", lines, created, now, terms_days))
        live = [inv for inv in job.invoices if inv.status != "void"]
        if live and all(inv.status == "paid" for inv in live) and job.invoices[-1].kind != "deposit":
            job.status = "completed"
        elif job.invoices:
            job.status = "in_progress"
        who.jobs.append(job)
    return people


def _fee(amount: int) -> int:
    return percent_of(amount, 290) + 30


def load(conn: Conn, people: list[DemoCustomer], now: datetime) -> dict[str, int]:
    """Insert the demo business unless it is already there; return counts inserted."""
    if not rows.claim_first_load(conn, MARKER):
        return {}
    counts = {"customers": 0, "jobs": 0, "invoices": 0, "payments": 0, "emails": 0, "reminders": 0}
    n = 0
    for person in people:
        customer_id = rows.insert_customer(conn, person.name, person.email, person.phone, person.address,
                                           person.opt_out,
                                           min([j.created_at for j in person.jobs], default=now) - timedelta(days=1))
        counts["customers"] += 1
        for job in person.jobs:
            completed_at = None
            if job.status == "completed":
                completed_at = max(inv.paid_at for inv in job.invoices if inv.paid_at)
            job_id = rows.insert_job(conn, customer_id, job.title, job.status, job.created_at, completed_at,
                                     job.created_at)
            counts["jobs"] += 1
            for inv in job.invoices:
                n += 1
                _load_invoice(conn, inv, job_id, customer_id, person, n, now, counts)
                if job.status == "completed" and inv.paid_at == completed_at:
                    rows.set_job_completed_by(conn, job_id, f"evt_demo_paid_{n:05d}")
    rows.mark_loaded(conn, MARKER, now)
    return counts


def _load_invoice(conn: Conn, inv: DemoInvoice, job_id: int, customer_id: int, person: DemoCustomer,
                  n: int, now: datetime, counts: dict[str, int]) -> None:
    sent = inv.status != "draft"
    stripe_id = f"in_demo_{n:05d}" if sent else None
    invoice_id = rows.insert_invoice(conn, (job_id, customer_id, inv.kind, inv.status, inv.total if sent else 0,
         inv.total if inv.status == "paid" else 0, inv.due_date, "test" if sent else None, stripe_id,
         f"DEMO-{n:04d}" if sent else None, None, inv.sent_at, inv.paid_at,
         inv.sent_at if inv.status == "void" else None, inv.created_at))
    counts["invoices"] += 1
    rows.insert_lines(conn, invoice_id, list(inv.lines))
    if not sent:
        return
    assert inv.sent_at is not None and inv.due_date is not None
    _audit(conn, invoice_id, "draft", "open", "system", "seed-demo", None, inv.sent_at)
    delivered = inv.sent_at + timedelta(seconds=20)
    opened = delivered + timedelta(minutes=3) if inv.opened else None
    clicked = (opened or delivered) + timedelta(minutes=1) if inv.clicked else None
    if inv.paid_at is not None:
        opened = min(opened, inv.paid_at) if opened else None
        clicked = min(clicked, inv.paid_at) if clicked else None
    rows.insert_invoice_email(conn, (invoice_id, f"demo-email-{n:05d}", f"demo-invoice-email-{n:05d}", person.email,
         f"Invoice DEMO-{n:04d} from Acme Home Services", inv.sent_at, delivered, opened, clicked,
         1 if opened else 0, 1 if clicked else 0, inv.sent_at))
    counts["emails"] += 1
    _load_reminders(conn, inv, invoice_id, person, counts)
    if inv.status == "paid":
        assert inv.paid_at is not None
        event_id = f"evt_demo_paid_{n:05d}"
        rows.insert_paid(conn, invoice_id, f"inpay_demo_{n:05d}", event_id, stripe_id, inv.total, _fee(inv.total),
                         inv.paid_at)
        _audit(conn, invoice_id, "open", "paid", "stripe_event", event_id, event_id, inv.paid_at)
        counts["payments"] += 1
    elif inv.status in ("void", "uncollectible"):
        _audit(conn, invoice_id, "open", inv.status, "system", "seed-demo", None, inv.sent_at + timedelta(days=45))


def _load_reminders(conn: Conn, inv: DemoInvoice, invoice_id: int, person: DemoCustomer,
                    counts: dict[str, int]) -> None:
    assert inv.due_date is not None
    due = datetime(inv.due_date.year, inv.due_date.month, inv.due_date.day, 15, tzinfo=timezone.utc)
    for seq, offset in enumerate((7, 14, 30), start=1):
        send_at = due + timedelta(days=offset)
        if seq <= inv.reminders_sent:
            status, reason = "sent", None
        elif inv.status == "open" and not person.opt_out:
            status, reason = "pending", None
        else:
            status, reason = "cancelled", {"paid": "paid", "void": "void"}.get(inv.status, "uncollectible")
            if person.opt_out and inv.status == "open":
                reason = "opted_out"
        rows.insert_reminder(conn, invoice_id, seq, offset, send_at, status,
                             f"demo-reminder-{invoice_id}-{seq}" if status == "sent" else None, reason,
                             send_at if status == "sent" else None,
                             (inv.paid_at or send_at) if status == "cancelled" else None)
        counts["reminders"] += 1


def _audit(conn: Conn, invoice_id: int, before: str, after: str, actor_type: str, actor: str,
           event_id: str | None, at: datetime) -> None:
    audit.write(conn, "invoice", invoice_id, before, after, actor, actor_type=actor_type, event_id=event_id, at=at)


def seed_demo(conn: Conn, now: datetime | None = None) -> dict[str, int]:
    now = now or datetime.now(timezone.utc)
    return load(conn, generate(now), now)
