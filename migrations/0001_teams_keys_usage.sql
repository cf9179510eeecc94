-- 0001: teams, API keys, usage rows, audit log.
-- Released migrations are never edited: change the schema with a new file.

CREATE TABLE teams (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    private     boolean NOT NULL DEFAULT false,   -- private teams may use in-house providers only
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are never stored in clear: only SHA-256 of the whole key and a short
-- display prefix (e.g. "tg-3fa9c1") so people can tell keys apart.
CREATE TABLE api_keys (
    id              bigserial PRIMARY KEY,
    team_id         bigint NOT NULL REFERENCES teams(id),
    name            text,
    key_sha256      bytea NOT NULL UNIQUE CHECK (octet_length(key_sha256) = 32),
    display_prefix  text NOT NULL,
    models          text[],                      -- NULL: every model; else only these
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_team_idx ON api_keys (team_id);

-- Running gateways LISTEN on this channel and reload their key table.
CREATE FUNCTION tollgate_notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tollgate_keys', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_keys();
CREATE TRIGGER teams_notify AFTER UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_keys();

-- One row per authenticated request. Token counts are as the provider reported
-- them; NULL means not reported. usage_complete is false when the stream was cut
-- short or the provider sent no usage: such a row is never silently zero.
CREATE TABLE usage_events (
    request_id          text PRIMARY KEY,
    team_id             bigint NOT NULL REFERENCES teams(id),
    key_id              bigint NOT NULL REFERENCES api_keys(id),
    model_requested     text NOT NULL,
    provider            text,                     -- NULL when no provider was reached
    upstream_model      text,
    attempts            integer NOT NULL DEFAULT 0,
    endpoint            text NOT NULL,            -- chat.completions | completions
    streamed            boolean NOT NULL,
    http_status         integer NOT NULL,
    error_type          text,                     -- NULL on success
    received_at         timestamptz NOT NULL,
    first_byte_at       timestamptz,
    completed_at        timestamptz NOT NULL,
    prompt_tokens       bigint,
    cache_hit_tokens    bigint,
    cache_miss_tokens   bigint,
    completion_tokens   bigint,
    reasoning_tokens    bigint,
    usage_complete      boolean NOT NULL
);
CREATE INDEX usage_events_completed_idx ON usage_events (completed_at);
CREATE INDEX usage_events_team_completed_idx ON usage_events (team_id, completed_at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    object      text NOT NULL,
    before      jsonb,
    after       jsonb
);
