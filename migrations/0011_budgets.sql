-- 0011: budgets per team (and optionally per key) and what happens past their
-- soft threshold. Amounts are integers in micro-units of the budget's currency
-- (USD 1.50 = 1500000); the gateway compares them with the sum of usage
-- charges (pico-units) in the budget's period, rounded up to micro-units.
-- Every change is audited. Released migrations are never edited.
CREATE TABLE budgets (
    id           bigserial PRIMARY KEY,
    team_id      bigint NOT NULL REFERENCES teams(id),
    key_id       bigint REFERENCES api_keys(id),       -- NULL: the whole team
    currency     char(3) NOT NULL REFERENCES currencies(code),
    period       text NOT NULL CHECK (period IN ('day', 'month', 'total')),
    zone         text NOT NULL DEFAULT 'UTC',           -- IANA zone the periods are aligned in
    hard_micro   bigint NOT NULL CHECK (hard_micro > 0 AND hard_micro < 4000000000000000),
    soft_micro   bigint CHECK (soft_micro > 0),         -- NULL: no soft threshold
    soft_policy  text NOT NULL DEFAULT 'alert'
                 CHECK (soft_policy IN ('alert', 'downgrade', 'cheaper', 'refuse')),
    -- model mapping used by soft_policy 'downgrade': "from=to[,from=to...]"
    downgrades   text NOT NULL DEFAULT ''
                 CHECK (downgrades ~ '^([A-Za-z0-9._:/-]+=[A-Za-z0-9._:/-]+(,[A-Za-z0-9._:/-]+=[A-Za-z0-9._:/-]+)*)?$'),
    webhook_url  text CHECK (webhook_url ~ '^http://[A-Za-z0-9.-]+(:[0-9]+)?(/[!-~]*)?$'),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text,
    CHECK (soft_micro IS NULL OR soft_micro <= hard_micro),
    CHECK (zone ~ '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$')
);
CREATE UNIQUE INDEX budgets_scope_idx ON budgets (team_id, COALESCE(key_id, 0));

-- Who changed governance data: tollgatectl runs SET LOCAL tollgate.actor.
CREATE FUNCTION governance_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    a jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    r jsonb := COALESCE(a, b);
BEGIN
    INSERT INTO audit_log (actor, action, object, before, after)
    VALUES (tollgate_actor(r->>'updated_by'), lower(TG_OP), TG_TABLE_NAME || '/' || (r->>'id'), b, a);
    RETURN NULL;
END $$;
CREATE TRIGGER budgets_audit AFTER INSERT OR UPDATE OR DELETE ON budgets
    FOR EACH ROW EXECUTE FUNCTION governance_audit();

-- Finding a period's spend from the ledger (the rebuild after Redis lost it).
CREATE INDEX usage_events_team_received_idx ON usage_events (team_id, received_at);
