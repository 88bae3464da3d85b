-- Login throttling per source instead of account lockout.
--
-- Locking an account after five failures let anyone who could reach the login form keep a
-- known account (the demo owner) locked out, and a locked account answered differently from a
-- wrong password (account enumeration). Failures are now counted per source: the pair
-- (client address, email) and the client address alone, so a stranger elsewhere can never
-- delay the owner's own logins. crm/users/auth.py decides the delay; this table only records.
CREATE TABLE crm.login_throttle (
    source_key      text PRIMARY KEY CHECK (length(source_key) BETWEEN 1 AND 400),
    failures        integer NOT NULL CHECK (failures > 0),
    last_failure_at timestamptz NOT NULL,
    blocked_until   timestamptz
);
CREATE INDEX login_throttle_last_failure_idx ON crm.login_throttle (last_failure_at);
ALTER TABLE crm.login_throttle ENABLE ROW LEVEL SECURITY;

-- Accounts are no longer locked; the columns stay for what the Users page shows.
UPDATE crm.app_users SET locked_until = NULL WHERE locked_until IS NOT NULL;
