"""Synthetic but realistic CRM data, as COPY text lines, generated in chunks of jobs.

Pure: a seed and an anchor time in, rows out; nothing here touches a database. The
shape follows a small service business over two years: about five invoices per
customer, one invoice per job (a deposit and a final invoice for one job in five),
one to five lines per invoice, most invoices paid within days of being sent (a third
within the hour, from the driveway), a long tail left open or marked uncollectible,
three or four reminders per sent invoice, one invoice email per sent invoice, and the
Stripe events and audit rows the sidecar would have written. Every CHECK of
db/migrations/0001_schema.sql holds (the smoke test and the loader prove it).

Rows are tuples of already-formatted text fields ('\\N' is NULL), ready for COPY.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from bench.rows import API_VERSION, DAY, NULL, TABLES, day, day_start, ts

HISTORY_DAYS = 730
INVOICES_PER_CUSTOMER = 5
REMINDER_OFFSETS = (7, 14, 30)
EXTRA_REMINDER_OFFSET = 60
# crm.queue_due_reminders hands reminders to Resend this long before they are due: at the
# anchor, everything due within it is already scheduled there (the steady state after a run).
HANDOFF_WINDOW_S = DAY


_FIRST = ("Ava", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai", "Lena", "Marco",
          "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tara")
_LAST = ("Smith", "Garcia", "Chen", "Okafor", "Novak", "Rossi", "Khan", "Larsen", "Silva", "Murphy", "Tanaka",
         "Weber", "Haddad", "Nguyen", "Kowalski")
_STREETS = ("Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm Dr", "Birch Way", "Harbor Blvd", "Mill Rd")
_JOBS = ("AC tune-up", "Furnace repair", "Water heater install", "Drain cleaning", "Leak repair",
         "Deep clean", "Move-out clean", "Duct cleaning", "Thermostat install", "Pipe replacement")
_LINES = ("Labour (hour)", "Service call", "Parts", "Refrigerant (lb)", "Filter", "Disposal fee", "Materials",
          "Travel", "Permit", "Cleaning supplies")
_NET_DAYS = (0, 0, 7, 14, 14, 30)


@dataclass(frozen=True)
class Plan:
    """How many rows of each kind a size asks for (ids are 1..n per table)."""

    invoices: int
    customers: int
    chunk_jobs: int = 5000

    @classmethod
    def for_invoices(cls, invoices: int) -> Plan:
        return cls(invoices=invoices, customers=max(1, invoices // INVOICES_PER_CUSTOMER))


@dataclass
class Chunk:
    """Rows of every table for a run of consecutive jobs (customers come in their own chunks)."""

    rows: dict[str, list[tuple[str, ...]]] = field(default_factory=lambda: {t: [] for t in TABLES})


@dataclass
class _Ids:
    job: int = 0
    invoice: int = 0
    line: int = 0
    payment: int = 0
    refund: int = 0
    reminder: int = 0
    email: int = 0
    audit: int = 0


def ttp_seconds(rng: random.Random) -> float | None:
    """Time from send to payment; None for the invoices that are never paid."""
    u = rng.random()
    if u < 0.06:
        return None
    if u < 0.36:  # paid from the driveway
        return rng.uniform(60, 3600)
    # Log-normal around three days, capped at four months.
    return min(120 * DAY, math.exp(rng.gauss(math.log(3 * DAY), 1.1)))


class Generator:
    """Streams chunks for `plan`; the same seed and anchor give the same rows."""

    def __init__(self, plan: Plan, anchor: datetime, seed: int = 7) -> None:
        self.plan = plan
        self.anchor = anchor.timestamp()
        self.seed = seed
        self.opted_out: set[int] = set()

    def customers(self) -> Iterator[list[tuple[str, ...]]]:
        rng = random.Random(self.seed)
        start = self.anchor - HISTORY_DAYS * DAY - 30 * DAY
        batch: list[tuple[str, ...]] = []
        for cid in range(1, self.plan.customers + 1):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            has_email = rng.random() < 0.97
            opt_out = rng.random() < 0.02
            if opt_out:
                self.opted_out.add(cid)
            created = ts(start + rng.random() * HISTORY_DAYS * DAY)
            batch.append((
                str(cid), f"{first} {last} #{cid}",
                f"{first.lower()}.{last.lower()}{cid}@example.com" if has_email else NULL,
                f"+1555{cid % 10_000_000:07d}", f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
                "t" if opt_out else "f", f"cus_bench{cid:09d}" if has_email else NULL, created, created,
            ))
            if len(batch) >= 20_000:
                yield batch
                batch = []
        if batch:
            yield batch

    def chunks(self) -> Iterator[Chunk]:
        rng = random.Random(self.seed + 1)
        ids = _Ids()
        chunk = Chunk()
        jobs_in_chunk = 0
        while ids.invoice < self.plan.invoices:
            self._job(rng, ids, chunk)
            jobs_in_chunk += 1
            if jobs_in_chunk >= self.plan.chunk_jobs:
                yield chunk
                chunk, jobs_in_chunk = Chunk(), 0
        if jobs_in_chunk:
            yield chunk

    def _customer_for(self, rng: random.Random) -> int:
        # Skewed: a few customers (low ids) get many jobs, most get a handful.
        return 1 + int(self.plan.customers * rng.random() ** 1.6) % self.plan.customers

    def _job(self, rng: random.Random, ids: _Ids, chunk: Chunk) -> None:
        ids.job += 1
        job_id = ids.job
        customer = self._customer_for(rng)
        created = self.anchor - rng.random() ** 0.8 * HISTORY_DAYS * DAY
        kinds = ("deposit", "final") if rng.random() < 0.2 else ("standard",)
        outcomes: list[tuple[str, float | None, str | None]] = []
        for n, kind in enumerate(kinds):
            if ids.invoice >= self.plan.invoices:
                break
            inv_created = min(self.anchor - 60, created + n * rng.uniform(1, 10) * DAY)
            outcomes.append(self._invoice(rng, ids, chunk, job_id, customer, kind, inv_created))
        statuses = [o[0] for o in outcomes]
        paid = [o for o in outcomes if o[0] == "paid"]
        live = [s for s in statuses if s != "void"]
        completed_at: float | None = None
        event: str | None = None
        if paid and all(s == "paid" for s in live):
            status = "completed"
            last = max(paid, key=lambda o: o[1] or 0.0)
            completed_at, event = last[1], last[2]
        elif not live:
            status = "cancelled"
        elif any(s in ("draft", "sending") for s in statuses):
            status = "in_progress" if rng.random() < 0.7 else "scheduled"
        else:
            status = "in_progress"
        updated = ts(completed_at) if completed_at else ts(created)
        chunk.rows["jobs"].append((
            str(job_id), str(customer), rng.choice(_JOBS), f"{rng.randint(1, 999)} {rng.choice(_STREETS)}", status,
            ts(created), ts(completed_at) if completed_at else NULL, event or NULL, ts(created), updated,
        ))

    def _invoice(self, rng: random.Random, ids: _Ids, chunk: Chunk, job_id: int, customer: int, kind: str,
                 created: float) -> tuple[str, float | None, str | None]:
        ids.invoice += 1
        iid = ids.invoice
        rows = chunk.rows
        total = 0
        for pos in range(rng.choice((1, 1, 2, 2, 3, 3, 3, 4, 5))):
            ids.line += 1
            qty = 1 if rng.random() < 0.7 else rng.randint(2, 6)
            unit = rng.randint(20, 600) * 100 if pos == 0 else rng.randint(5, 150) * 100
            total += qty * unit
            rows["invoice_lines"].append((str(ids.line), str(iid), str(pos), rng.choice(_LINES), str(qty), str(unit)))
        age = self.anchor - created
        u = rng.random()
        if u < (0.35 if age < 3 * DAY else 0.005):
            return self._unsent(rows, iid, job_id, customer, kind, created, total, "draft")
        if u > 0.9995:
            return self._unsent(rows, iid, job_id, customer, kind, created, total, "sending")
        sent = min(self.anchor - 30, created + rng.uniform(0, 0.5) * DAY)
        due = day_start(sent) + rng.choice(_NET_DAYS) * DAY
        ttp = ttp_seconds(rng)
        status, paid_at, closed_at = "open", None, None
        if rng.random() < 0.03:
            status, closed_at = "void", min(self.anchor - 1, sent + rng.uniform(0.1, 10) * DAY)
        elif ttp is not None and sent + ttp < self.anchor:
            status, paid_at = "paid", sent + ttp
        elif self.anchor - due > 120 * DAY and rng.random() < 0.6:
            status, closed_at = "uncollectible", due + 120 * DAY
        stripe_id = f"in_bench{iid:010d}"
        evt_final = f"evt_benchf{iid:010d}"
        evt_close = f"evt_benchc{iid:010d}"
        paid_cents = total if status == "paid" else 0
        refunded = 0
        if status == "paid":
            ids.payment += 1
            fee = total * 29 // 1000 + 30
            assert paid_at is not None
            rows["payments"].append((
                str(ids.payment), str(iid), "test", f"inpay_bench{iid:010d}", f"pi_bench{iid:010d}",
                f"ch_bench{iid:010d}", evt_close, str(total), str(fee), str(total - fee), "usd", ts(paid_at),
                ts(paid_at + 2),
            ))
            if rng.random() < 0.01:
                ids.refund += 1
                refunded = total if rng.random() < 0.5 else total // 2 or total
                at = ts(paid_at + rng.uniform(1, 20) * DAY if paid_at + 20 * DAY < self.anchor else paid_at + 60)
                rows["refunds"].append((str(ids.refund), str(iid), str(ids.payment), "test", f"re_bench{iid:010d}",
                                        str(refunded), "usd", "succeeded", at, at))
        bounced = rng.random() < 0.01
        ids.email += 1
        email_id = ids.email
        resend_id = f"bench-em-{email_id:010d}"
        opened = rng.random() < (0.85 if status == "paid" else 0.5)
        clicked = opened and rng.random() < (0.9 if status == "paid" else 0.3)
        rows["email_messages"].append((
            str(email_id), "invoice", str(iid), NULL, resend_id, f"bench-invoice-{iid}", "billing@example.com",
            f"customer{customer}@example.com", f"Invoice {iid:06d}", "bounced" if bounced else "delivered",
            ts(sent + 1), NULL if bounced else ts(sent + 5), ts(sent + 120) if opened and not bounced else NULL,
            ts(sent + 180) if clicked and not bounced else NULL, "1" if opened and not bounced else "0",
            "1" if clicked and not bounced else "0", ts(sent), ts(sent + 180),
        ))
        closed_event_at = paid_at if status == "paid" else closed_at
        rows["invoices"].append((
            str(iid), str(job_id), str(customer), kind, status, str(total), str(paid_cents), str(refunded),
            day(due), "test", stripe_id, f"BENCH-{iid:07d}", f"https://invoice.stripe.test/i/{stripe_id}",
            f"https://pay.stripe.test/invoice/{stripe_id}/pdf", resend_id,
            "email_bounced" if bounced else NULL, "hard bounce" if bounced else NULL, ts(sent),
            ts(paid_at) if paid_at else NULL, ts(closed_at) if status == "void" and closed_at else NULL,
            ts(created), ts(closed_event_at or sent),
        ))
        self._events(rows, ids, iid, stripe_id, (evt_final, evt_close), status, (sent, closed_event_at), total, rng)
        self._reminders(rng, ids, rows, iid, customer, status, due, closed_event_at)
        return status, paid_at, evt_close if status == "paid" else None

    def _unsent(self, rows: dict[str, list[tuple[str, ...]]], iid: int, job_id: int, customer: int, kind: str,
                created: float, total: int, status: str) -> tuple[str, float | None, str | None]:
        rows["invoices"].append((
            str(iid), str(job_id), str(customer), kind, status, str(total), "0", "0", NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ts(created), ts(created),
        ))
        return status, None, None

    def _events(self, rows: dict[str, list[tuple[str, ...]]], ids: _Ids, iid: int, stripe_id: str,
                evts: tuple[str, str], status: str, times: tuple[float, float | None], total: int,
                rng: random.Random) -> None:
        evt_final, evt_close = evts
        sent, closed = times
        def payload(evt: str, etype: str, obj_status: str, at: float) -> str:
            return (f'{{"id": "{evt}", "type": "{etype}", "object": "event", "livemode": false, '
                    f'"created": {int(at)}, "data": {{"object": {{"id": "{stripe_id}", "object": "invoice", '
                    f'"status": "{obj_status}", "amount_due": {total}}}}}}}')

        rows["stripe_events"].append((
            evt_final, "invoice.finalized", "test", API_VERSION, stripe_id, str(iid), "applied", "webhook", "0",
            ts(sent), ts(sent + 1), payload(evt_final, "invoice.finalized", "open", sent),
        ))
        if status == "open" or closed is None:
            return
        etype = {"paid": "invoice.paid", "void": "invoice.voided",
                 "uncollectible": "invoice.marked_uncollectible"}[status]
        dupes = "1" if rng.random() < 0.1 else "0"
        rows["stripe_events"].append((
            evt_close, etype, "test", API_VERSION, stripe_id, str(iid), "applied", "webhook", dupes,
            ts(closed), ts(closed + 1), payload(evt_close, etype, status, closed),
        ))
        ids.audit += 1
        rows["audit_log"].append((
            str(ids.audit), "invoice", str(iid), "open", status, "stripe_event", evt_close, evt_close, ts(closed + 1),
        ))

    def _reminders(self, rng: random.Random, ids: _Ids, rows: dict[str, list[tuple[str, ...]]], iid: int,
                   customer: int, status: str, due: float, closed: float | None) -> None:
        offsets = REMINDER_OFFSETS + ((EXTRA_REMINDER_OFFSET,) if rng.random() < 0.16 else ())
        opted_out = customer in self.opted_out
        hour = 15 * 3600.0  # 9 am in the business's zone, in UTC
        for seq, offset in enumerate(offsets, start=1):
            ids.reminder += 1
            rid = ids.reminder
            send_at = due + offset * DAY + hour
            created = due - 10 * DAY if due - 10 * DAY < self.anchor else self.anchor - 3600
            resend_id = reason = cancel = queued = handed = sent_at = cancelled_at = NULL
            if opted_out:
                state, reason, cancelled_at = "cancelled", "opted_out", ts(created + 1)
            elif closed is not None and send_at >= closed:
                state, reason, cancelled_at = "cancelled", {"paid": "paid", "void": "void"}.get(
                    status, "uncollectible"), ts(closed + 1)
                if send_at - closed < 2 * DAY:  # it had already been handed to Resend
                    resend_id, cancel = f"bench-rm-{rid:010d}", "done"
            elif send_at < self.anchor or closed is not None:
                state, resend_id = "sent", f"bench-rm-{rid:010d}"
                queued, handed, sent_at = ts(send_at - DAY), ts(send_at - DAY + 60), ts(send_at)
            elif send_at <= self.anchor + HANDOFF_WINDOW_S:
                # Queued by the last run and handed to Resend with scheduled_at = send_at.
                state, resend_id = "scheduled", f"bench-rm-{rid:010d}"
                queued, handed = ts(send_at - DAY), ts(send_at - DAY + 60)
            else:
                state = "pending"
            updated = cancelled_at if cancelled_at != NULL else (sent_at if sent_at != NULL else ts(created))
            rows["reminders"].append((
                str(rid), str(iid), str(seq), str(offset), ts(send_at), state, resend_id, reason, cancel, queued,
                handed, sent_at, cancelled_at, ts(created), updated,
            ))
            if state == "sent":
                ids.email += 1
                rows["email_messages"].append((
                    str(ids.email), "reminder", str(iid), str(rid), resend_id, f"bench-reminder-{rid}",
                    "billing@example.com", f"customer{customer}@example.com", f"Reminder: invoice {iid:06d}",
                    "delivered", sent_at, sent_at, NULL, NULL, "0", "0", queued, sent_at,
                ))
