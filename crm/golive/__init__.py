"""Going live: the checklist, the rule that refuses live mode until it is green, and the
checks each step makes against Stripe, Resend and the ledger."""
