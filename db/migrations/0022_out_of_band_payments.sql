-- Money received outside Stripe (cash, a check) and recorded at Stripe: a payment record
-- attached to the invoice (part of it) or the invoice paid out of band (all of what was left).
-- `method` says which kind of payment a row is; an out-of-band one has no Stripe fee.
ALTER TABLE crm.payments
    ADD COLUMN method text NOT NULL DEFAULT 'stripe' CHECK (method IN ('stripe', 'out_of_band'));
