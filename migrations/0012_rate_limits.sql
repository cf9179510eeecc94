-- 0012: rate limits per team and optionally per key: requests per minute,
-- tokens per minute (prompt tokens at admission, completion tokens when
-- known) and concurrent requests. NULL = no limit of that kind. Audited.
CREATE TABLE rate_limits (
    id                   bigserial PRIMARY KEY,
    team_id              bigint NOT NULL REFERENCES teams(id),
    key_id               bigint REFERENCES api_keys(id),  -- NULL: the whole team
    requests_per_minute  bigint CHECK (requests_per_minute > 0),
    tokens_per_minute    bigint CHECK (tokens_per_minute > 0),
    concurrent           bigint CHECK (concurrent > 0),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    updated_by           text
);
CREATE UNIQUE INDEX rate_limits_scope_idx ON rate_limits (team_id, COALESCE(key_id, 0));
CREATE TRIGGER rate_limits_audit AFTER INSERT OR UPDATE OR DELETE ON rate_limits
    FOR EACH ROW EXECUTE FUNCTION governance_audit();
