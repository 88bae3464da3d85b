"""``GET /v1/account``: the account behind the API key, in Stripe's Account shape.

The sandbox has one account, named after the sandbox's business name (``SANDBOX_BUSINESS_NAME``);
test and live keys see the same account, as at Stripe. The CRM's go-live checklist shows its
``settings.dashboard.display_name`` (or ``business_profile.name``) to prove a key works.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.context import Sandbox
from sandbox.state import Obj
from sandbox.stripe_call import Call
from sandbox.stripe_errors import StripeError
from sandbox.stripe_params import check_allowed

ACCOUNT_ID = "acct_1SandboxAccount0001"
ACCOUNT_CREATED = 1_700_000_000

# The capability each payment method type needs (Stripe's names), and the account's by default.
CAPABILITY_OF = {"card": "card_payments", "us_bank_account": "us_bank_account_ach_payments",
                 "ach_debit": "ach_debit_payments", "acss_debit": "acss_debit_payments",
                 "bancontact": "bancontact_payments", "sepa_debit": "sepa_debit_payments", "link": "link_payments",
                 "customer_balance": "bank_transfer_payments", "ach_credit_transfer": "bank_transfer_payments"}
DEFAULT_CAPABILITIES = {"card_payments": "active", "transfers": "active", "us_bank_account_ach_payments": "active"}
CAPABILITY_STATUSES = ("active", "inactive", "pending")


def capabilities(sb: Sandbox) -> dict[str, str]:
    return dict(sb.capabilities or DEFAULT_CAPABILITIES)


def require_capabilities(sb: Sandbox, types: Iterable[str] | None,
                         param: str = "payment_settings[payment_method_types]") -> None:
    """Stripe refuses a payment method type the account has no active capability for."""
    held = capabilities(sb)
    for t in types or ():
        needed = CAPABILITY_OF.get(t)
        if needed and held.get(needed) != "active":
            raise StripeError(
                f"The payment method type `{t}` is not activated for this account (capability `{needed}` is "
                f"{held.get(needed, 'inactive')}). Activate it in the Dashboard's payment methods settings before "
                "offering it.", code="payment_method_unactivated", param=param)


def account_object(name: str, caps: dict[str, str] | None = None) -> Obj:
    empty_requirements: Obj = {"alternatives": [], "current_deadline": None, "currently_due": [],
                               "disabled_reason": None, "errors": [], "eventually_due": [], "past_due": [],
                               "pending_verification": []}
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {
            "annual_revenue": None, "estimated_worker_count": None, "mcc": "1711", "name": name,
            "product_description": "Home services (SANDBOX)", "support_address": None,
            "support_email": None, "support_phone": None, "support_url": None, "url": None,
            "minority_owned_business_designation": None,
        },
        "business_type": "company",
        "capabilities": dict(caps or DEFAULT_CAPABILITIES),
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": ACCOUNT_CREATED,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "owner@sandbox.invalid",
        "external_accounts": {"data": [], "has_more": False, "object": "list",
                              "url": f"/v1/accounts/{ACCOUNT_ID}/external_accounts"},
        "future_requirements": dict(empty_requirements),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": dict(empty_requirements),
        "settings": {
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_payments": {"decline_on": {"avs_failure": True, "cvc_failure": True},
                              "statement_descriptor_prefix": None, "statement_descriptor_prefix_kana": None,
                              "statement_descriptor_prefix_kanji": None},
            "dashboard": {"display_name": name, "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
            "payments": {"statement_descriptor": name[:22].upper(), "statement_descriptor_kana": None,
                         "statement_descriptor_kanji": None, "statement_descriptor_prefix_kana": None,
                         "statement_descriptor_prefix_kanji": None},
            "payouts": {"debit_negative_balances": True, "schedule": {"delay_days": 2, "interval": "daily"},
                        "statement_descriptor": None},
        },
        "tos_acceptance": {"date": ACCOUNT_CREATED, "ip": None, "user_agent": None},
        "type": "standard",
    }


def account_retrieve(call: Call) -> Obj:
    check_allowed(call.p, ("expand",))
    return account_object(call.sb.settings.business_name, capabilities(call.sb))


def accounts_retrieve(call: Call) -> Obj:
    """``GET /v1/accounts/{id}``: only the key's own account (no Connect in the sandbox)."""
    check_allowed(call.p, ("expand",))
    if call.args[0] != ACCOUNT_ID:
        raise StripeError(f"No such account: '{call.args[0]}'", status=404, code="resource_missing",
                          param="account")
    return account_object(call.sb.settings.business_name, capabilities(call.sb))
