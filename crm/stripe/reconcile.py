"""Reconciliation with Stripe: the CRM converges with Stripe whatever webhooks were lost.

One run, for the configured Stripe mode only: (1) list Stripe's events since the last
checkpoint (minus an overlap) and apply each through crm.apply_stripe_event with source
'reconcile', so an event the sidecar already applied is only counted as a duplicate;
(2) re-apply every event recorded 'unmatched' in the look-back whose invoice or payment is
now known (crm.replay_stripe_event: a refund that came before its payment); (3) compare
every CRM invoice still open, sending or uncollectible with Stripe's invoice and repair
drift with a synthetic event (deterministic `evt_reconcile_...` id) through the same SQL
function, so a repair is audited, deduplicated and never moves an invoice backwards;
(4) compare the money of every invoice touched since the listing start: Stripe's
InvoicePayments the CRM lacks (synthetic `invoice_payment.paid`), and per payment the
charge's `amount_refunded` against the CRM's refunded amount (its refunds listed and
applied as synthetic `refund.updated`, and a synthetic `charge.refunded`); (5) one pass
of crm.money.payment_details (fees, missing payment intents, decline reasons). A Send left
`sending` after its lease ran out is reported, not re-run: the owner resumes it with Send
(the workflow resumes from its recorded steps).

Runs of one mode exclude each other with an advisory lock held for the run; a second
run finds it taken and returns a skipped report. Each run is recorded in
crm.reconcile_runs. Callers: the sidecar's worker, `python -m crm reconcile`, and the
dashboard's Activity page (`run_reconcile`, `latest_runs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stripe import StripeError

from crm.config.settings import load_settings
from crm.money import payment_details
from crm.money.amounts import format_cents
from crm.money.payment_details import reconcile_event_id, synthetic_event
from crm.stripe.event_rules import EVENT_ID, event_problem, invoice_status_may_move, mode_of
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from crm.stripe.gateway import StripeGateway, StripeGatewayError, as_json_object, stripe_target
from crm.stripe.payment_methods import default_payment
from db import invoices
from db import payment_details as details_q
from db import reconcile_runs as runs
from db.config import env_int
from db.driver import Conn, DatabaseError, OperationalError
from db.pool import connect
from db.stripe_events import apply_event

log = logging.getLogger("crm.reconcile")

# Stripe's final statuses and the event that announces each.
REPAIR_EVENT_TYPES = {"paid": "invoice.paid", "void": "invoice.voided", "uncollectible": "invoice.marked_uncollectible"}
DEFAULT_OVERLAP_S = 300  # events can be created slightly out of order
DEFAULT_LOOKBACK_DAYS = 30  # Stripe keeps events for 30 days


# ---------------------------------------------------------------- pure rules

@dataclass(frozen=True)
class Repair:
    event_type: str
    reason: str


def listing_start(checkpoint: datetime | None, now: datetime, overlap_s: int = DEFAULT_OVERLAP_S,
                  lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> datetime:
    """Where a run starts listing: the checkpoint minus the overlap, never before the lookback."""
    floor = now - timedelta(days=lookback_days)
    if checkpoint is None:
        return floor
    return max(floor, checkpoint - timedelta(seconds=overlap_s))


def next_checkpoint(previous: datetime | None, listed: list[int], failed: list[int]) -> datetime | None:
    """The `created` (unix) up to which every listed event is applied: the oldest failure when
    there is one (the next run lists it again), else the newest listed event."""
    if failed:
        return datetime.fromtimestamp(min(failed), UTC)
    if listed:
        newest = datetime.fromtimestamp(max(listed), UTC)
        return newest if previous is None else max(previous, newest)
    return previous


def drift_repair(crm_status: str, crm_amount_paid: int, stripe_status: str | None,
                 stripe_amount_paid: int) -> Repair | None:
    """What the CRM misses of what Stripe knows; None when nothing may move forward."""
    if stripe_status in REPAIR_EVENT_TYPES and invoice_status_may_move(crm_status, stripe_status):
        return Repair(REPAIR_EVENT_TYPES[stripe_status], f"Stripe says {stripe_status}, the CRM said {crm_status}")
    if crm_status != "void" and stripe_amount_paid > crm_amount_paid:
        return Repair("invoice.updated", f"Stripe has {stripe_amount_paid} paid, the CRM had {crm_amount_paid}")
    return None


def repair_event_id(stripe_invoice: dict[str, Any]) -> str:
    """Deterministic per (invoice, status, amount paid): a repeated repair is a duplicate."""
    paid = int(stripe_invoice.get("amount_paid") or 0)
    return reconcile_event_id(stripe_invoice["id"], stripe_invoice.get("status"), paid)


# ---------------------------------------------------------------- report

@dataclass
class ReconcileReport:
    mode: str
    actor: str
    skipped: bool = False
    run_id: int | None = None
    listed_since: datetime | None = None
    checkpoint: datetime | None = None
    outcomes: dict[str, int] = field(default_factory=dict)  # applied, duplicate, ignored, unmatched, rejected
    invoices_checked: int = 0
    repairs: list[dict[str, Any]] = field(default_factory=list)
    stuck_sends: list[int] = field(default_factory=list)
    # CRM invoices Stripe does not know in this mode (other keys, deleted there, demo data):
    # a finding for staff, not a failed run.
    missing_at_stripe: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Unmatched events re-applied because what they name is now known (outcome -> count).
    replayed: dict[str, int] = field(default_factory=dict)
    money_checked: int = 0
    details: dict[str, int] = field(default_factory=dict)  # crm.money.payment_details pass counts

    event_errors: int = 0

    @property
    def events_seen(self) -> int:
        return sum(self.outcomes.values()) + self.event_errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return {
            "events_seen": self.events_seen, "events_applied": self.outcomes.get("applied", 0),
            "events_duplicate": self.outcomes.get("duplicate", 0), "invoices_checked": self.invoices_checked,
            "invoices_repaired": sum(1 for r in self.repairs if r["outcome"] == "applied"),
            "invoices_missing_at_stripe": len(self.missing_at_stripe),
            "events_replayed": sum(self.replayed.values()), "invoices_money_checked": self.money_checked,
            "errors": len(self.errors),
        }

    def lines(self) -> list[str]:
        """What `python -m crm reconcile` prints."""
        if self.skipped:
            return [f"another reconcile of {self.mode} mode is running; nothing done"]
        c = self.counts()
        since = self.listed_since.isoformat(timespec="seconds") if self.listed_since else "?"
        others = ", ".join(f"{v} {k}" for k, v in sorted(self.outcomes.items()) if k not in ("applied", "duplicate"))
        out = [f"reconcile {self.mode} mode (run {self.run_id}): {'ok' if self.ok else 'finished with errors'}",
               f"checked {c['events_seen']} Stripe events since {since}: {c['events_applied']} applied, "
               f"{c['events_duplicate']} already recorded" + (f", {others}" if others else ""),
               f"re-applied {c['events_replayed']} events recorded unmatched before what they name arrived",
               f"checked {c['invoices_checked']} open/sending invoices against Stripe, and the money of "
               f"{c['invoices_money_checked']}: {c['invoices_repaired']} repaired"]
        out += [f"  fixed invoice #{r['invoice_id']} ({r['stripe_invoice_id']}): {r['reason']} -> {r['to_status']}"
                for r in self.repairs if r["outcome"] == "applied"]
        out += [f"  invoice #{i} is stuck in sending (its Send stopped); press Send to resume it"
                for i in self.stuck_sends]
        out += [f"  invoice #{m['invoice_id']} ({m['stripe_invoice_id']}) is unknown to Stripe in {self.mode} mode "
                "(sent with other keys, or deleted there)" for m in self.missing_at_stripe]
        out += [f"  error: {e}" for e in self.errors]
        return out

    def as_detail(self) -> dict[str, Any]:
        return {"outcomes": self.outcomes, "repairs": self.repairs, "stuck_sends": self.stuck_sends,
                "replayed": self.replayed, "payment_details": self.details,
                "missing_at_stripe": self.missing_at_stripe[:200], "errors": self.errors[:50]}


# ---------------------------------------------------------------- the run

def _apply_listed(conn: Conn, events: list[dict[str, Any]], mode: str,
                  report: ReconcileReport) -> list[int]:
    """Applies listed events oldest first; returns the `created` of those that failed."""
    failed: list[int] = []
    for event in sorted(events, key=lambda e: (int(e.get("created") or 0), str(e.get("id")))):
        problem = event_problem(event) or (None if mode_of(event["livemode"]) == mode else "event of the other mode")
        if problem:
            report.event_errors += 1
            report.errors.append(f"event {event.get('id')}: {problem}")
            log.error("reconcile: event not applied", extra={"fields": {"event_id": event.get("id"), "why": problem}})
            failed.append(int(event.get("created") or 0))
            continue
        try:
            result = apply_event(conn, event, mode, source="reconcile")
        except OperationalError:
            raise  # the database went away: the run fails and keeps the previous checkpoint
        except DatabaseError as exc:
            report.event_errors += 1
            report.errors.append(f"event {event['id']}: {type(exc).__name__}: {exc}"[:300])
            log.exception("reconcile: applying an event failed", extra={"fields": {"event_id": event["id"]}})
            failed.append(int(event["created"]))
            continue
        report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
    return failed


def _repair_drift(conn: Conn, gateway: StripeGateway, mode: str, now: datetime,
                  report: ReconcileReport) -> None:
    for inv in runs.invoices_to_check(conn, mode):
        report.invoices_checked += 1
        try:
            stripe_inv = as_json_object(gateway.retrieve_invoice(str(inv["stripe_invoice_id"])))
        except StripeGatewayError as exc:
            if exc.http_status == 404:
                report.missing_at_stripe.append({"invoice_id": int(inv["id"]),
                                                 "stripe_invoice_id": str(inv["stripe_invoice_id"])})
                continue
            report.errors.append(f"invoice #{inv['id']} ({inv['stripe_invoice_id']}): {exc}")
            if exc.retryable:
                report.errors.append("Stripe unreachable: stopped checking invoices")
                return
            continue
        repair = drift_repair(str(inv["status"]), int(inv["amount_paid_cents"]), stripe_inv.get("status"),
                              int(stripe_inv.get("amount_paid") or 0))
        if repair is None:
            if inv["status"] == "sending" and inv["lease_expired"]:
                report.stuck_sends.append(int(inv["id"]))
            continue
        event = synthetic_event(stripe_inv, repair.event_type, repair_event_id(stripe_inv), mode, now)
        if not EVENT_ID.match(event["id"]):
            report.errors.append(f"invoice #{inv['id']}: cannot name a repair for {stripe_inv['id']!r}")
            continue
        result = apply_event(conn, event, mode, source="reconcile")
        report.repairs.append({"invoice_id": int(inv["id"]), "stripe_invoice_id": stripe_inv["id"],
                               "event_id": event["id"], "reason": repair.reason, "outcome": result.outcome,
                               "from_status": inv["status"], "to_status": result.to_status or inv["status"],
                               "amount_paid": format_cents(int(stripe_inv.get("amount_paid") or 0),
                                                           str(stripe_inv.get("currency") or "usd"))})
        log.info("reconcile: repaired drift", extra={"fields": {"invoice_id": inv["id"], "event_id": event["id"],
                                                                 "outcome": result.outcome}})


def _money_repair(conn: Conn, report: ReconcileReport, inv: dict[str, Any], event: dict[str, Any],
                  reason: str) -> None:
    mode = report.mode
    result = apply_event(conn, event, mode, source="reconcile")
    if result.outcome in ("duplicate", "ignored"):
        return
    report.repairs.append({"invoice_id": int(inv["id"]), "stripe_invoice_id": inv["stripe_invoice_id"],
                           "event_id": event["id"], "reason": reason, "outcome": result.outcome,
                           "from_status": inv["status"], "to_status": result.to_status or inv["status"]})
    log.info("reconcile: repaired money", extra={"fields": {"invoice_id": inv["id"], "event_id": event["id"],
                                                             "outcome": result.outcome}})


def _compare_payments(conn: Conn, gateway: StripeGateway, report: ReconcileReport,
                      inv: dict[str, Any], stripe_inv: dict[str, Any], now: datetime) -> None:
    """Stripe's InvoicePayments the CRM has not recorded (their event was lost)."""
    known = {str(p["stripe_payment_id"]) for p in runs.payments_of(conn, int(inv["id"]))}
    default = default_payment((stripe_inv.get("payments") or {}).get("data") or [])
    if default is not None:
        # Sent before the Send recorded it, or the Send died right after finalize.
        invoices.record_default_payment_intent(conn, int(inv["id"]), report.mode, *default)
    for inpay in (stripe_inv.get("payments") or {}).get("data") or []:
        if inpay.get("status") != "paid" or inpay["id"] in known:
            continue
        event = synthetic_event(inpay, "invoice_payment.paid", payment_details.invoice_payment_event_id(inpay),
                                report.mode, now)
        _money_repair(conn, report, inv, event,
                      f"Stripe has payment {inpay['id']} of {format_cents(int(inpay.get('amount_paid') or 0))}, "
                      "the CRM did not")


def _compare_refunds(conn: Conn, gateway: StripeGateway, report: ReconcileReport,
                     inv: dict[str, Any], now: datetime) -> None:
    """Per payment: the charge's amount_refunded against what the CRM counts."""
    for pay in runs.payments_of(conn, int(inv["id"])):
        charge_id = pay["stripe_charge_id"]
        if not charge_id and pay["stripe_payment_intent_id"]:
            latest = gateway.retrieve_payment_intent(str(pay["stripe_payment_intent_id"])).get("latest_charge")
            charge_id = latest.get("id") if isinstance(latest, dict) else latest
        if not charge_id:
            continue
        charge = as_json_object(gateway.retrieve_charge(str(charge_id)))
        stripe_refunded = int(charge.get("amount_refunded") or 0)
        if stripe_refunded == int(pay["refunded"]):
            continue
        reason = (f"Stripe has {format_cents(stripe_refunded)} refunded on {charge_id}, "
                  f"the CRM had {format_cents(int(pay['refunded']))}")
        for refund in gateway.list_refunds(str(charge_id)):
            refund = as_json_object(refund)
            event = synthetic_event(refund, "refund.updated", reconcile_event_id(refund["id"], refund.get("status")),
                                    report.mode, now)
            _money_repair(conn, report, inv, event, reason)
        charge.pop("refunds", None)
        _money_repair(conn, report, inv, synthetic_event(
            charge, "charge.refunded", reconcile_event_id(charge_id, "refunded", stripe_refunded), report.mode, now),
            reason)


def _compare_disputes(conn: Conn, gateway: StripeGateway, report: ReconcileReport,
                      inv: dict[str, Any], now: datetime) -> None:
    """Per charge: Stripe's disputes against the CRM's (a lost `charge.dispute.*` event leaves
    an invoice Paid while a chargeback is open, or Disputed after it was decided), repaired
    with a synthetic `charge.dispute.created`, `.updated` or `.closed` carrying Stripe's dispute."""
    held = runs.dispute_states(conn, int(inv["id"]))
    for pay in runs.payments_of(conn, int(inv["id"])):
        if not (pay["stripe_charge_id"] or pay["stripe_payment_intent_id"]):
            continue  # nothing Stripe could have disputed yet
        for dispute in gateway.list_disputes(charge_id=pay["stripe_charge_id"],
                                             payment_intent_id=pay["stripe_payment_intent_id"]):
            dispute = as_json_object(dispute)
            status = str(dispute.get("status"))
            if held.get(str(dispute["id"])) == status:
                continue
            kind = ("created" if dispute["id"] not in held
                    else "closed" if status in ("won", "lost") else "updated")
            event = synthetic_event(dispute, f"charge.dispute.{kind}", reconcile_event_id(dispute["id"], status),
                                    report.mode, now)
            _money_repair(conn, report, inv, event,
                          f"Stripe has dispute {dispute['id']} {status}, the CRM had "
                          f"{held.get(str(dispute['id']), 'no such dispute')}")


def _compare_money(conn: Conn, gateway: StripeGateway, now: datetime,
                   report: ReconcileReport) -> None:
    since = report.listed_since or now - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    for inv in runs.invoices_touched(conn, report.mode, since):
        report.money_checked += 1
        try:
            stripe_inv = as_json_object(gateway.retrieve_invoice_with_payments(str(inv["stripe_invoice_id"])))
            _compare_payments(conn, gateway, report, inv, stripe_inv, now)
            _compare_refunds(conn, gateway, report, inv, now)
            _compare_disputes(conn, gateway, report, inv, now)
        except StripeGatewayError as exc:
            if exc.http_status == 404:
                continue  # reported by the status comparison when it matters
            report.errors.append(f"invoice #{inv['id']} ({inv['stripe_invoice_id']}) money: {exc}")
            if exc.retryable:
                report.errors.append("Stripe unreachable: stopped comparing money")
                return


def _list_events(gateway: StripeGateway, since: datetime) -> list[dict[str, Any]]:
    try:
        return [as_json_object(e) for e in gateway.list_events(int(since.timestamp()), list(HANDLED_EVENT_TYPES))]
    except StripeError as exc:  # a later page fails outside the gateway's retry loop
        raise StripeGatewayError(str(exc), retryable=True, http_status=exc.http_status) from exc


def _run(conn: Conn, gateway: StripeGateway, report: ReconcileReport, now: datetime) -> None:
    mode = report.mode
    previous = runs.last_checkpoint(conn, mode)
    report.listed_since = listing_start(previous, now, env_int("RECONCILE_OVERLAP_S", DEFAULT_OVERLAP_S),
                                        env_int("RECONCILE_LOOKBACK_DAYS", DEFAULT_LOOKBACK_DAYS))
    run_id = report.run_id = runs.start_run(conn, mode, report.actor, report.listed_since)
    ok = False
    try:
        try:
            events = _list_events(gateway, report.listed_since)
        except StripeGatewayError as exc:
            report.errors.append(f"could not list Stripe events: {exc}")
        else:
            failed = _apply_listed(conn, events, mode, report)
            report.checkpoint = next_checkpoint(previous, [int(e.get("created") or 0) for e in events], failed)
            report.replayed = details_q.replay_unmatched(
                conn, mode, now - timedelta(days=env_int("RECONCILE_LOOKBACK_DAYS", DEFAULT_LOOKBACK_DAYS)))
            _repair_drift(conn, gateway, mode, now, report)
            _compare_money(conn, gateway, now, report)
            try:
                report.details = payment_details.run_pass(conn, gateway, mode, now=now, source="reconcile",
                                                          unlinked_older_than_s=0)
            except StripeGatewayError as exc:
                report.errors.append(f"payment details: {exc}")
        ok = report.ok
    finally:
        if not ok and not report.errors:
            report.errors.append("the run stopped unexpectedly")
        try:
            runs.finish_run(conn, run_id, ok=ok, counts=report.counts(), checkpoint=report.checkpoint,
                            detail=report.as_detail())
        except DatabaseError:
            log.exception("reconcile: could not record the run", extra={"fields": {"run_id": report.run_id}})


def run_reconcile(actor: str, *, now: datetime | None = None, gateway: StripeGateway | None = None
                  ) -> ReconcileReport:
    """One reconcile run for the configured mode; safe at any time, any number of times."""
    with connect() as lock_conn:  # its transaction holds the run lock until the run ends
        settings = load_settings(lock_conn)
        report = ReconcileReport(mode=settings.stripe_mode, actor=actor)
        if not runs.try_lock(lock_conn, report.mode):
            report.skipped = True
            log.info("reconcile: another run holds the lock", extra={"fields": {"mode": report.mode}})
            return report
        gw = gateway or StripeGateway(stripe_target(settings))
        with connect(autocommit=True) as conn:
            runs.close_interrupted(conn, report.mode)
            _run(conn, gw, report, now or datetime.now(UTC))
    log.info("reconcile finished", extra={"fields": {"mode": report.mode, **report.counts()}})
    return report


def latest_runs(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    """The newest reconcile runs first (for the Activity page)."""
    return runs.latest(conn, limit)
