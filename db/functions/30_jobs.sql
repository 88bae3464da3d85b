-- Job completion: a job completes when every non-void invoice on it is paid and at least
-- one is, in the transaction of the event that paid (or voided) the last one; the audit
-- row names that event.
--
-- Job completion takes FOR NO KEY UPDATE on the job instead of FOR UPDATE.
-- A paid event writes its invoice row twice in one transaction; the second write re-checks
-- the (job_id, customer_id) foreign key and so holds KEY SHARE on the job. FOR UPDATE
-- conflicts with KEY SHARE, so two invoices of one job paid at the same moment deadlocked
-- (each waited for the other's KEY SHARE; Postgres aborted one, the sidecar answered 500 and
-- the job completed only on Stripe's retry). FOR NO KEY UPDATE does not conflict with KEY
-- SHARE but still serialises the two completions: the second waits, then sees both paid.

-- The one completion rule, for whoever closed the last invoice: a Stripe event (the
-- webhook or reconcile) or a user (voiding an invoice in the dashboard, so a job with a paid
-- deposit and a voided final invoice completes at the void). The audit row names the actor.
CREATE OR REPLACE FUNCTION crm.complete_job_if_done(p_job_id bigint, p_actor_type text, p_actor text,
                                                    p_event_id text, p_detail jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM crm.jobs WHERE id = p_job_id FOR NO KEY UPDATE;
    IF v_status IS NULL OR v_status IN ('completed', 'cancelled') THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM crm.invoices WHERE job_id = p_job_id AND status NOT IN ('paid', 'void'))
       OR NOT EXISTS (SELECT 1 FROM crm.invoices WHERE job_id = p_job_id AND status = 'paid') THEN
        RETURN false;
    END IF;
    UPDATE crm.jobs SET status = 'completed', completed_at = now(), completed_by_event_id = p_event_id
     WHERE id = p_job_id;
    PERFORM crm.write_audit('job', p_job_id, v_status, 'completed', p_actor_type, p_actor,
                            jsonb_build_object('reason', 'every non-void invoice is paid') || coalesce(p_detail, '{}'),
                            p_event_id);
    RETURN true;
END;
$$;


-- A Stripe event closed the last invoice: the audit row and the job name that event.
CREATE OR REPLACE FUNCTION crm.complete_job_if_paid(p_job_id bigint, p_event_id text)
RETURNS boolean
LANGUAGE sql AS $$
    SELECT crm.complete_job_if_done(p_job_id, 'stripe_event', p_event_id, p_event_id, '{}'::jsonb);
$$;


-- A user voided an invoice of the job (crm/send/followups.py, in the void's transaction).
CREATE OR REPLACE FUNCTION crm.complete_job_after_void(p_job_id bigint, p_invoice_id bigint, p_actor text)
RETURNS boolean
LANGUAGE sql AS $$
    SELECT crm.complete_job_if_done(p_job_id, 'user', p_actor, NULL,
                                    jsonb_build_object('completed_by', 'void', 'voided_invoice_id', p_invoice_id));
$$;
