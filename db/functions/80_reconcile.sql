-- Reconciliation with Stripe: the advisory lock key that keeps two runs of one mode apart.

-- One key per mode: a test-mode and a live-mode run may overlap, two of one mode may not.
CREATE OR REPLACE FUNCTION crm.reconcile_lock_key(p_mode text)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('crm.reconcile:' || p_mode, 0);
$$;
