"""Refunds from the CRM: an owner gives back all or part of what an invoice was paid.

`owner_refund` holds the rules (who may, how much, from which payments: pure) and the
workflow (an idempotency record before each call to Stripe). The refund itself then arrives
by webhook like any other (db/functions/50_payments_refunds.sql).
"""
