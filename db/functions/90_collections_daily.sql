-- The Collections page's daily roll-up (crm.collections_daily, 0016): what records a
-- change, and the refresh the page calls before it reads.
--
-- Maintained incrementally: triggers on invoices, payments and invoice emails append the
-- times whose local days changed (sent_at, paid_at, old and new) to crm.collections_changes;
-- crm.refresh_collections_daily(tz) recomputes only those days, each from its own rows
-- (one index range per run of consecutive days), and the exact weekly medians of their weeks
-- (crm.collections_weekly), and rebuilds everything when the roll-up was built for another
-- time zone (or never). A page read that finds nothing changed costs
-- one empty DELETE.

-- Upper bounds (seconds) of the time-to-pay buckets; db/queries_collections.TIME_TO_PAY_BOUNDS
-- says the same (a test holds them equal).
CREATE OR REPLACE FUNCTION crm.time_to_pay_bounds()
RETURNS float8[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[300, 900, 3600, 14400, 86400, 259200, 604800, 1209600, 2592000, 5184000]::float8[];
$$;


-- The one trigger function behind every roll-up trigger below: the times whose local days a
-- changed row counts on, before and after the change, go to crm.collections_changes. Each
-- table's trigger says (WHEN) which changes matter; this says which times they move. A plpgsql
-- CASE per table, not an SQL one: a record's fields are looked up only on the branch taken.
CREATE OR REPLACE FUNCTION crm.collections_note() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz[] := '{}';
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'invoices' THEN
        IF TG_OP <> 'INSERT' THEN
            v_at := ARRAY[OLD.sent_at, OLD.paid_at];
        END IF;
        IF TG_OP <> 'DELETE' THEN
            v_at := v_at || ARRAY[NEW.sent_at, NEW.paid_at];
        END IF;
        -- 'Paid after its first reminder' is counted on the day of that reminder.
        IF TG_OP = 'UPDATE' AND OLD.paid_at IS DISTINCT FROM NEW.paid_at THEN
            v_at := v_at || (SELECT min(r.sent_at) FROM crm.reminders r WHERE r.invoice_id = NEW.id AND r.status = 'sent');
        END IF;
    WHEN 'payments' THEN
        v_at := CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.paid_at] WHEN 'DELETE' THEN ARRAY[OLD.paid_at]
                           ELSE ARRAY[OLD.paid_at, NEW.paid_at] END;
    WHEN 'refunds' THEN
        -- A refund counts on the day it was made.
        v_at := CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.created_at] WHEN 'DELETE' THEN ARRAY[OLD.created_at]
                           ELSE ARRAY[OLD.created_at, NEW.created_at] END;
    WHEN 'disputes' THEN
        -- A dispute lost (or no longer lost) counts on the day it closed: the money went back then.
        IF TG_OP <> 'INSERT' AND OLD.status = 'lost' THEN
            v_at := ARRAY[OLD.closed_at];
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status = 'lost' THEN
            v_at := v_at || NEW.closed_at;
        END IF;
    WHEN 'reminders' THEN
        -- A reminder that went out (or stopped counting as sent).
        IF TG_OP = 'UPDATE' AND OLD.status = 'sent' THEN
            v_at := ARRAY[OLD.sent_at];
        END IF;
        IF NEW.status = 'sent' THEN
            v_at := v_at || NEW.sent_at;
        END IF;
    WHEN 'email_messages' THEN
        -- An invoice email's tracking moves its invoice's send day in the funnel.
        v_at := ARRAY(SELECT i.sent_at FROM crm.invoices i WHERE i.id = NEW.invoice_id);
    END CASE;
    INSERT INTO crm.collections_changes (at) SELECT DISTINCT t FROM unnest(v_at) t WHERE t IS NOT NULL;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER invoices_collections_insert AFTER INSERT ON crm.invoices
    FOR EACH ROW WHEN (NEW.sent_at IS NOT NULL OR NEW.paid_at IS NOT NULL)
    EXECUTE FUNCTION crm.collections_note();
CREATE OR REPLACE TRIGGER invoices_collections_update AFTER UPDATE ON crm.invoices
    FOR EACH ROW WHEN (OLD.sent_at IS DISTINCT FROM NEW.sent_at OR OLD.paid_at IS DISTINCT FROM NEW.paid_at
                       OR ((OLD.status IS DISTINCT FROM NEW.status
                            OR OLD.amount_due_cents IS DISTINCT FROM NEW.amount_due_cents)
                           AND (NEW.sent_at IS NOT NULL OR NEW.paid_at IS NOT NULL)))
    EXECUTE FUNCTION crm.collections_note();
CREATE OR REPLACE TRIGGER invoices_collections_delete AFTER DELETE ON crm.invoices
    FOR EACH ROW WHEN (OLD.sent_at IS NOT NULL OR OLD.paid_at IS NOT NULL)
    EXECUTE FUNCTION crm.collections_note();

CREATE OR REPLACE TRIGGER payments_collections_insert AFTER INSERT OR DELETE ON crm.payments
    FOR EACH ROW EXECUTE FUNCTION crm.collections_note();
CREATE OR REPLACE TRIGGER payments_collections_update AFTER UPDATE ON crm.payments
    FOR EACH ROW WHEN (OLD.paid_at IS DISTINCT FROM NEW.paid_at OR OLD.amount_cents IS DISTINCT FROM NEW.amount_cents
                       OR OLD.fee_cents IS DISTINCT FROM NEW.fee_cents)
    EXECUTE FUNCTION crm.collections_note();

CREATE OR REPLACE TRIGGER email_messages_collections_insert AFTER INSERT ON crm.email_messages
    FOR EACH ROW WHEN (NEW.kind = 'invoice' AND NEW.invoice_id IS NOT NULL)
    EXECUTE FUNCTION crm.collections_note();
CREATE OR REPLACE TRIGGER email_messages_collections_update AFTER UPDATE ON crm.email_messages
    FOR EACH ROW WHEN (NEW.kind = 'invoice' AND NEW.invoice_id IS NOT NULL
                       AND (OLD.delivered_at IS DISTINCT FROM NEW.delivered_at
                            OR OLD.first_opened_at IS DISTINCT FROM NEW.first_opened_at
                            OR OLD.first_clicked_at IS DISTINCT FROM NEW.first_clicked_at))
    EXECUTE FUNCTION crm.collections_note();

CREATE OR REPLACE TRIGGER disputes_collections AFTER INSERT OR UPDATE OR DELETE ON crm.disputes
    FOR EACH ROW EXECUTE FUNCTION crm.collections_note();

-- A refund made, changed (its status, its fee) or removed.
CREATE OR REPLACE TRIGGER refunds_collections_insert AFTER INSERT OR DELETE ON crm.refunds
    FOR EACH ROW EXECUTE FUNCTION crm.collections_note();
CREATE OR REPLACE TRIGGER refunds_collections_update AFTER UPDATE ON crm.refunds
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.amount_cents IS DISTINCT FROM NEW.amount_cents
                       OR OLD.fee_cents IS DISTINCT FROM NEW.fee_cents OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION crm.collections_note();

CREATE OR REPLACE TRIGGER reminders_collections_insert AFTER INSERT ON crm.reminders
    FOR EACH ROW WHEN (NEW.status = 'sent') EXECUTE FUNCTION crm.collections_note();
CREATE OR REPLACE TRIGGER reminders_collections_update AFTER UPDATE ON crm.reminders
    FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status OR OLD.sent_at IS DISTINCT FROM NEW.sent_at)
                       AND (OLD.status = 'sent' OR NEW.status = 'sent'))
    EXECUTE FUNCTION crm.collections_note();

-- The per-table functions this one replaced (their triggers now name crm.collections_note).
DROP FUNCTION IF EXISTS crm.collections_note_invoice(), crm.collections_note_payment(), crm.collections_note_email(),
    crm.collections_note_dispute(), crm.collections_note_refund(), crm.collections_note_reminder();


-- The roll-up rows of every local day (in p_tz) from p_from to p_until (local midnights).
CREATE OR REPLACE FUNCTION crm.collections_day_rows(p_tz text, p_from timestamptz, p_until timestamptz)
RETURNS SETOF crm.collections_daily
LANGUAGE plpgsql STABLE
-- A full rebuild crosses jit_above_cost; compiling would cost more than it saves.
SET jit = off AS $$
BEGIN
    RETURN QUERY
    WITH days AS (
        SELECT generate_series((p_from AT TIME ZONE p_tz)::date, (p_until AT TIME ZONE p_tz)::date - 1,
                               interval '1 day')::date AS day
    ), sent AS (
        SELECT (i.sent_at AT TIME ZONE p_tz)::date AS day, count(*)::int AS n, sum(i.amount_due_cents)::bigint AS cents,
               count(*) FILTER (WHERE (i.paid_at AT TIME ZONE p_tz)::date = (i.sent_at AT TIME ZONE p_tz)::date)::int
                   AS same_day,
               count(*) FILTER (WHERE i.paid_at - i.sent_at <= interval '1 hour')::int AS within_hour,
               count(*) FILTER (WHERE m.delivered)::int AS delivered, count(*) FILTER (WHERE m.opened)::int AS opened,
               count(*) FILTER (WHERE m.clicked)::int AS clicked, count(*) FILTER (WHERE i.paid_at IS NOT NULL)::int
                   AS paid
          FROM crm.invoices i
          LEFT JOIN LATERAL (
              SELECT bool_or(e.delivered_at IS NOT NULL) AS delivered,
                     bool_or(e.first_opened_at IS NOT NULL) AS opened,
                     bool_or(e.first_clicked_at IS NOT NULL) AS clicked
                FROM crm.email_messages e WHERE e.invoice_id = i.id AND e.kind = 'invoice'
          ) m ON true
         WHERE i.sent_at >= p_from AND i.sent_at < p_until AND i.status <> 'void'
         GROUP BY 1
    ), ttp AS (
        SELECT (paid_at AT TIME ZONE p_tz)::date AS day,
               width_bucket(extract(epoch FROM paid_at - sent_at)::float8, crm.time_to_pay_bounds()) AS bucket,
               count(*)::int AS n
          FROM crm.invoices
         WHERE paid_at >= p_from AND paid_at < p_until AND sent_at IS NOT NULL
         GROUP BY 1, 2
    ), ttp_days AS (
        SELECT dd.day, sum(coalesce(t.n, 0))::int AS n, array_agg(coalesce(t.n, 0) ORDER BY b.b) AS buckets
          FROM (SELECT DISTINCT day FROM ttp) dd
         CROSS JOIN generate_series(0, 10) AS b(b)
          LEFT JOIN ttp t ON t.day = dd.day AND t.bucket = b.b
         GROUP BY dd.day
    ), rem AS (
        -- A reminder is an invoice's first when no sent reminder of that invoice went out earlier.
        SELECT f.day, sum(f.sent)::int AS sent, count(*) FILTER (WHERE f.first_at IS NOT NULL)::int AS first,
               count(*) FILTER (WHERE f.first_at IS NOT NULL AND i.paid_at > f.first_at)::int AS paid_after
          FROM (SELECT (r.sent_at AT TIME ZONE p_tz)::date AS day, r.invoice_id, count(*) AS sent,
                       min(r.sent_at) FILTER (WHERE NOT EXISTS (
                           SELECT 1 FROM crm.reminders e
                            WHERE e.invoice_id = r.invoice_id AND e.status = 'sent' AND e.sent_at < r.sent_at))
                           AS first_at
                  FROM crm.reminders r
                 WHERE r.status = 'sent' AND r.sent_at >= p_from AND r.sent_at < p_until
                 GROUP BY 1, 2) f
          JOIN crm.invoices i ON i.id = f.invoice_id
         GROUP BY f.day
    ), pay AS (
        SELECT (paid_at AT TIME ZONE p_tz)::date AS day, count(*)::int AS n, sum(amount_cents)::bigint AS cents,
               coalesce(sum(fee_cents), 0)::bigint AS fees, count(*) FILTER (WHERE fee_cents IS NULL)::int AS pending
          FROM crm.payments
         WHERE paid_at >= p_from AND paid_at < p_until
         GROUP BY 1
    ), refunded AS (
        -- Refunds Stripe counts (pending or succeeded), by the day they were made.
        SELECT (created_at AT TIME ZONE p_tz)::date AS day, count(*)::int AS n, sum(amount_cents)::bigint AS cents,
               coalesce(sum(fee_cents), 0)::bigint AS fees
          FROM crm.refunds
         WHERE created_at >= p_from AND created_at < p_until
           AND status IN ('pending', 'requires_action', 'succeeded')
         GROUP BY 1
    ), lost AS (
        SELECT (closed_at AT TIME ZONE p_tz)::date AS day, sum(amount_cents)::bigint AS cents
          FROM crm.disputes
         WHERE status = 'lost' AND closed_at >= p_from AND closed_at < p_until
         GROUP BY 1
    )
    SELECT d.day, p_tz, coalesce(s.n, 0), coalesce(s.cents, 0), coalesce(s.same_day, 0), coalesce(s.within_hour, 0),
           coalesce(s.delivered, 0), coalesce(s.opened, 0), coalesce(s.clicked, 0), coalesce(s.paid, 0),
           coalesce(p.n, 0), coalesce(p.cents, 0), coalesce(p.fees, 0), coalesce(l.cents, 0), coalesce(p.pending, 0),
           coalesce(f.n, 0), coalesce(f.cents, 0), coalesce(f.fees, 0),
           coalesce(t.n, 0), coalesce(t.buckets, array_fill(0, ARRAY[11])),
           coalesce(r.sent, 0), coalesce(r.first, 0), coalesce(r.paid_after, 0),
           now()
      FROM days d
      LEFT JOIN sent s ON s.day = d.day
      LEFT JOIN pay p ON p.day = d.day
      LEFT JOIN ttp_days t ON t.day = d.day
      LEFT JOIN rem r ON r.day = d.day
      LEFT JOIN lost l ON l.day = d.day
      LEFT JOIN refunded f ON f.day = d.day;
END;
$$;


-- The weekly medians of the local weeks (Mondays) from p_from to p_until (local midnights).
CREATE OR REPLACE FUNCTION crm.collections_week_rows(p_tz text, p_from timestamptz, p_until timestamptz)
RETURNS SETOF crm.collections_weekly
LANGUAGE plpgsql STABLE
SET jit = off AS $$
BEGIN
    RETURN QUERY
    SELECT date_trunc('week', paid_at AT TIME ZONE p_tz)::date, p_tz,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - sent_at)), count(*)::int, now()
      FROM crm.invoices
     WHERE paid_at >= p_from AND paid_at < p_until AND sent_at IS NOT NULL
     GROUP BY 1;
END;
$$;


-- Bring the roll-up up to date for p_tz; returns how many days it recomputed.
CREATE OR REPLACE FUNCTION crm.refresh_collections_daily(p_tz text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_built text;
    v_lo timestamptz;
    v_hi timestamptz;
    v_from timestamptz;
    v_until timestamptz;
    v_days integer := 0;
    v_changed date[];
    r record;
BEGIN
    -- One refresh at a time (two dashboards refreshing at once: the second finds nothing left).
    PERFORM pg_advisory_xact_lock(7302113016);
    SELECT tz INTO v_built FROM crm.collections_daily_state;
    IF v_built IS DISTINCT FROM p_tz THEN
        DELETE FROM crm.collections_changes;
        DELETE FROM crm.collections_daily;
        DELETE FROM crm.collections_weekly;
        SELECT least(min(sent_at), min(paid_at)), greatest(max(sent_at), max(paid_at))
          INTO v_lo, v_hi FROM crm.invoices;
        SELECT least(v_lo, min(paid_at)), greatest(v_hi, max(paid_at)) INTO v_lo, v_hi FROM crm.payments;
        SELECT least(v_lo, min(sent_at)), greatest(v_hi, max(sent_at)) INTO v_lo, v_hi
          FROM crm.reminders WHERE status = 'sent';
        SELECT least(v_lo, min(closed_at)), greatest(v_hi, max(closed_at)) INTO v_lo, v_hi
          FROM crm.disputes WHERE status = 'lost';
        SELECT least(v_lo, min(created_at)), greatest(v_hi, max(created_at)) INTO v_lo, v_hi FROM crm.refunds;
        IF v_lo IS NOT NULL THEN
            v_from := ((v_lo AT TIME ZONE p_tz)::date)::timestamp AT TIME ZONE p_tz;
            v_until := ((v_hi AT TIME ZONE p_tz)::date + 1)::timestamp AT TIME ZONE p_tz;
            INSERT INTO crm.collections_daily SELECT * FROM crm.collections_day_rows(p_tz, v_from, v_until);
            GET DIAGNOSTICS v_days = ROW_COUNT;
            INSERT INTO crm.collections_weekly SELECT * FROM crm.collections_week_rows(p_tz, v_from, v_until);
        END IF;
        INSERT INTO crm.collections_daily_state (singleton, tz, built_at) VALUES (true, p_tz, now())
        ON CONFLICT (singleton) DO UPDATE SET tz = EXCLUDED.tz, built_at = EXCLUDED.built_at;
        RETURN v_days;
    END IF;
    -- The changed local days, in runs of consecutive days (gaps and islands): one index
    -- range per run. Rows committed after this DELETE stay for the next refresh.
    WITH gone AS (DELETE FROM crm.collections_changes RETURNING at)
    SELECT array_agg(DISTINCT (at AT TIME ZONE p_tz)::date) INTO v_changed FROM gone;
    IF v_changed IS NULL THEN
        RETURN 0;
    END IF;
    FOR r IN
        WITH runs AS (SELECT day, day - (row_number() OVER (ORDER BY day))::int AS grp
                        FROM unnest(v_changed) AS day)
        SELECT min(day) AS lo, max(day) AS hi FROM runs GROUP BY grp ORDER BY 1
    LOOP
        DELETE FROM crm.collections_daily WHERE day BETWEEN r.lo AND r.hi;
        INSERT INTO crm.collections_daily
        SELECT * FROM crm.collections_day_rows(p_tz, r.lo::timestamp AT TIME ZONE p_tz,
                                               (r.hi + 1)::timestamp AT TIME ZONE p_tz);
        v_days := v_days + (r.hi - r.lo) + 1;
    END LOOP;
    -- And the weeks those days are in.
    FOR r IN SELECT DISTINCT date_trunc('week', day)::date AS week FROM unnest(v_changed) AS day ORDER BY 1
    LOOP
        DELETE FROM crm.collections_weekly WHERE week = r.week;
        INSERT INTO crm.collections_weekly
        SELECT * FROM crm.collections_week_rows(p_tz, r.week::timestamp AT TIME ZONE p_tz,
                                                (r.week + 7)::timestamp AT TIME ZONE p_tz);
    END LOOP;
    RETURN v_days;
END;
$$;
