"""Stripe handlers for customers and invoices (create, lines, finalize, pay, void...)."""

from __future__ import annotations

import re
from typing import Any

from sandbox import stripe_billing as billing
from sandbox import stripe_objects as so
from sandbox.state import Obj
from sandbox.stripe_account import require_capabilities
from sandbox.stripe_call import Call, get_obj, list_response, metadata_ok, render
from sandbox.stripe_errors import StripeError, param_invalid
from sandbox.stripe_events import emit
from sandbox.stripe_params import (
    LIST_PARAMS,
    as_bool,
    as_int,
    as_list,
    check_allowed,
    email_ok,
    paginate,
    require,
)

# ---------------------------------------------------------------- customers

CUSTOMER_FIELDS = ("email", "name", "phone", "description", "metadata", "address",
                   "preferred_locales", "shipping", "invoice_settings", "tax_exempt",
                   "invoice_prefix", "payment_method", "test_clock", "balance")


def customers_create(call: Call) -> Obj:
    check_allowed(call.p, CUSTOMER_FIELDS)
    metadata_ok(call.p)
    email_ok(call.p.get("email"))
    params = dict(call.p)
    if "balance" in params:
        params["balance"] = as_int(params["balance"], "balance")
    return render(call, billing.create_customer(call.sb, call.ctx, params))


def customers_list(call: Call) -> Obj:
    email = call.p.get("email")
    return list_response(call, "customer", "/v1/customers", ("email", "test_clock"),
                 lambda c: email is None or c.get("email") == email)


def customers_retrieve(call: Call) -> Obj:
    check_allowed(call.p, ())
    return render(call, get_obj(call, "customer", call.args[0]))


def customers_update(call: Call) -> Obj:
    check_allowed(call.p, CUSTOMER_FIELDS)
    metadata_ok(call.p)
    email_ok(call.p.get("email"))
    cus = get_obj(call, "customer", call.args[0])
    params = dict(call.p)
    if "balance" in params:
        params["balance"] = as_int(params["balance"], "balance")
    return render(call, billing.update_customer(call.sb, call.ctx, cus, params))


def customers_delete(call: Call) -> Obj:
    cus = get_obj(call, "customer", call.args[0])
    del call.sb.store.coll(call.ctx.mode, "customer")[cus["id"]]
    emit(call.sb, call.ctx, "customer.deleted", so.public(cus))
    return {"id": cus["id"], "object": "customer", "deleted": True}


# ---------------------------------------------------------------- invoices

INVOICE_CREATE = ("customer", "collection_method", "days_until_due", "due_date", "auto_advance",
                  "pending_invoice_items_behavior", "currency", "metadata", "description",
                  "footer", "statement_descriptor", "automatic_tax", "custom_fields",
                  "default_payment_method", "payment_settings", "rendering", "number",
                  "effective_at")


def _invoice_params(p: Obj) -> Obj:
    out = dict(p)
    if "days_until_due" in p:
        out["days_until_due"] = as_int(p["days_until_due"], "days_until_due", 0)
    if "due_date" in p:
        out["due_date"] = as_int(p["due_date"], "due_date", 0)
    if "auto_advance" in p:
        out["auto_advance"] = as_bool(p["auto_advance"], "auto_advance")
    if "collection_method" in p and p["collection_method"] not in ("send_invoice",
                                                                     "charge_automatically"):
        raise param_invalid("collection_method", "Invalid collection_method: must be one of "
                                                 "charge_automatically or send_invoice")
    if "currency" in p and not re.fullmatch(r"[a-z]{3}", str(p["currency"])):
        raise param_invalid("currency", f"Invalid currency: {p['currency']}")
    if p.get("pending_invoice_items_behavior") not in (None, "exclude", "include"):
        raise param_invalid("pending_invoice_items_behavior",
                            "Invalid pending_invoice_items_behavior: must be exclude or include")
    if "payment_settings" in p:
        out["payment_settings"] = _payment_settings(p["payment_settings"])
    return out


# Payment method types an invoice may list (a subset of Stripe's; the hosted page offers
# card and, when listed, us_bank_account).
PAYMENT_METHOD_TYPES = ("ach_credit_transfer", "ach_debit", "acss_debit", "bancontact", "card", "customer_balance",
                        "link", "sepa_debit", "us_bank_account")


def _payment_settings(raw: Any) -> Obj:
    if not isinstance(raw, dict):
        raise param_invalid("payment_settings", "Invalid payment_settings: must be a hash")
    check_allowed(raw, ("payment_method_types", "payment_method_options", "default_mandate"))
    types = [str(t) for t in as_list(raw.get("payment_method_types"), "payment_settings[payment_method_types]")]
    for t in types:
        if t not in PAYMENT_METHOD_TYPES:
            raise param_invalid("payment_settings[payment_method_types]",
                                f"Invalid payment_settings[payment_method_types][]: {t!r} is not a valid "
                                "payment method type")
    return {"payment_method_types": types or None}


def invoices_create(call: Call) -> Obj:
    check_allowed(call.p, INVOICE_CREATE)
    require(call.p, "customer")
    metadata_ok(call.p)
    params = _invoice_params(call.p)
    require_capabilities(call.sb, (params.get("payment_settings") or {}).get("payment_method_types"))
    return render(call, billing.create_invoice(call.sb, call.ctx, params))


def invoices_list(call: Call) -> Obj:
    status, customer = call.p.get("status"), call.p.get("customer")
    method = call.p.get("collection_method")
    if status not in (None, "draft", "open", "paid", "uncollectible", "void"):
        raise param_invalid("status", f"Invalid status: {status}")
    return list_response(call, "invoice", "/v1/invoices",
                 ("status", "customer", "collection_method", "due_date", "subscription"),
                 lambda i: (status is None or i["status"] == status)
                 and (customer is None or i["customer"] == customer)
                 and (method is None or i["collection_method"] == method))


def invoices_retrieve(call: Call) -> Obj:
    check_allowed(call.p, ())
    return render(call, get_obj(call, "invoice", call.args[0]))


def invoices_update(call: Call) -> Obj:
    check_allowed(call.p, INVOICE_CREATE)
    metadata_ok(call.p)
    inv = get_obj(call, "invoice", call.args[0])
    params = _invoice_params(call.p)
    params.pop("customer", None)
    return render(call, billing.update_invoice(call.sb, call.ctx, inv, params))


def invoices_delete(call: Call) -> Obj:
    inv = get_obj(call, "invoice", call.args[0])
    return billing.delete_invoice(call.sb, call.ctx, inv)


LINE_FIELDS = {"amount", "description", "discountable", "discounts", "invoice_item", "metadata",
               "period", "price_data", "pricing", "quantity", "tax_amounts", "tax_rates"}


def _parse_line(i: int, line: Any) -> Obj:
    prefix = f"lines[{i}]"
    if not isinstance(line, dict):
        raise param_invalid(prefix, f"Invalid object: {prefix}")
    for key in line:
        if key not in LINE_FIELDS:
            raise StripeError(f"Received unknown parameter: {prefix}[{key}]",
                              code="parameter_unknown", param=f"{prefix}[{key}]")
    if "invoice_item" in line or "pricing" in line:
        raise param_invalid(prefix, "The sandbox supports lines with `price_data` or `amount` "
                                    "only (not invoice_item or pricing.price).")
    out = dict(line)
    if "quantity" in line:
        out["quantity"] = as_int(line["quantity"], f"{prefix}[quantity]", 0)
    if "amount" in line:
        out["amount"] = as_int(line["amount"], f"{prefix}[amount]")
        if out["amount"] < 0:
            raise param_invalid(f"{prefix}[amount]", "Invalid non-negative integer "
                                "(the sandbox does not model credit lines)",
                                "parameter_invalid_integer")
    pd = line.get("price_data")
    if pd is not None:
        if not isinstance(pd, dict):
            raise param_invalid(f"{prefix}[price_data]", "Invalid object")
        if "unit_amount" not in pd:
            raise StripeError(f"Missing required param: {prefix}[price_data][unit_amount].",
                              code="parameter_missing", param=f"{prefix}[price_data][unit_amount]")
        if "currency" not in pd:
            raise StripeError(f"Missing required param: {prefix}[price_data][currency].",
                              code="parameter_missing", param=f"{prefix}[price_data][currency]")
        if "unit_amount_decimal" in pd:
            raise StripeError("You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                              code="parameters_exclusive", param=f"{prefix}[price_data][unit_amount_decimal]")
        pd = dict(pd)
        pd["unit_amount"] = as_int(pd["unit_amount"], f"{prefix}[price_data][unit_amount]", 0)
        if not (pd.get("product_data") or {}).get("name") and not pd.get("product"):
            raise StripeError(f"Missing required param: {prefix}[price_data][product_data][name].",
                              code="parameter_missing",
                              param=f"{prefix}[price_data][product_data][name]")
        out["price_data"] = pd
    elif "amount" not in line:
        raise StripeError(f"Missing required param: {prefix}[price_data].",
                          code="parameter_missing", param=f"{prefix}[price_data]")
    if out.get("amount") is not None and not line.get("description"):
        raise StripeError(f"Missing required param: {prefix}[description].",
                          code="parameter_missing", param=f"{prefix}[description]")
    return out


def invoices_add_lines(call: Call) -> Obj:
    check_allowed(call.p, ("lines", "invoice_metadata"))
    inv = get_obj(call, "invoice", call.args[0])
    raw = call.p.get("lines")
    if not raw:
        raise StripeError("Missing required param: lines.", code="parameter_missing", param="lines")
    lines = [_parse_line(i, line) for i, line in enumerate(as_list(raw, "lines"))]
    billing.add_lines(call.sb, call.ctx, inv, lines)
    if isinstance(call.p.get("invoice_metadata"), dict):
        inv["metadata"] = billing.merge_metadata(inv["metadata"], call.p["invoice_metadata"])
    return render(call, inv)


def invoices_lines(call: Call) -> Obj:
    check_allowed(call.p, LIST_PARAMS)
    inv = get_obj(call, "invoice", call.args[0])
    lines = [call.sb.store.coll(call.ctx.mode, "line_item")[lid] for lid in inv["_line_ids"]]
    # Invoice lines are listed in the order they were added, not newest first.
    return paginate(lines, call.p, f"/v1/invoices/{inv['id']}/lines", so.public)


def invoices_finalize(call: Call) -> Obj:
    check_allowed(call.p, ("auto_advance",))
    inv = get_obj(call, "invoice", call.args[0])
    params = {}
    if "auto_advance" in call.p:
        params["auto_advance"] = as_bool(call.p["auto_advance"], "auto_advance")
    if inv["status"] == "draft":
        # A capability deactivated since the draft was made: Stripe refuses to finalize it.
        require_capabilities(call.sb, (inv.get("payment_settings") or {}).get("payment_method_types"))
    return render(call, billing.finalize(call.sb, call.ctx, inv, params))


def invoices_pay(call: Call) -> Obj:
    check_allowed(call.p, ("paid_out_of_band", "payment_method", "source", "forgive",
                           "off_session", "mandate"))
    inv = get_obj(call, "invoice", call.args[0])
    oob = as_bool(call.p.get("paid_out_of_band", False), "paid_out_of_band")
    pm = str(call.p.get("payment_method") or call.p.get("source") or "pm_card_visa")
    decline = None
    if "insufficientfunds" in pm.lower():
        decline = "insufficient_funds"
    elif "declined" in pm.lower():
        decline = "generic_decline"
    return render(call, billing.pay(call.sb, call.ctx, inv, out_of_band=oob,
                                     decline_code=decline))


def invoices_void(call: Call) -> Obj:
    check_allowed(call.p, ())
    return render(call, billing.void(call.sb, call.ctx, get_obj(call, "invoice", call.args[0])))


def invoices_uncollectible(call: Call) -> Obj:
    check_allowed(call.p, ())
    inv = get_obj(call, "invoice", call.args[0])
    return render(call, billing.mark_uncollectible(call.sb, call.ctx, inv))


def invoices_send(call: Call) -> Obj:
    check_allowed(call.p, ())
    return render(call, billing.send(call.sb, call.ctx, get_obj(call, "invoice", call.args[0])))
