"""Send via Stripe and what follows it: the workflow behind the button, its recorded external
steps, the rules that decide whether an invoice can go, its lines and totals, deterministic
idempotency keys, and the follow-ups on a sent invoice (email again, void)."""
