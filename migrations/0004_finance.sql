-- 0004: the usage ledger for finance. usage_events becomes a table
-- partitioned by month (UTC) on completed_at, with partitions created ahead
-- by usage_partitions_ensure() (the usage writer calls it on every connection
-- and every hour); optional retention (off by default); indexes for finance
-- queries; daily and monthly views. Every column and view is documented in
-- docs/finance.md (a public interface). Released migrations are never edited.
--
-- The primary key becomes (request_id, completed_at): a partitioned table's
-- unique keys must contain the partition key. That keeps request_id unique:
-- the gateway makes one record per request, with a random request id and a
-- completion time fixed in the record before it is spooled, so a replayed
-- record always carries the same pair (and lands in the same partition). The
-- writer inserts with ON CONFLICT DO NOTHING; `tollgatectl usage verify`
-- also checks that no request id appears twice.

-- Finance views read usage_events: drop the view of 0002 and recreate it on
-- the new table (same columns, same meaning).
DROP VIEW usage_charge_recomputed;

ALTER TABLE usage_events RENAME TO usage_events_unpartitioned;
ALTER INDEX usage_events_pkey RENAME TO usage_events_unpartitioned_pkey;
ALTER INDEX usage_events_completed_idx RENAME TO usage_events_unpartitioned_completed_idx;
ALTER INDEX usage_events_team_completed_idx RENAME TO usage_events_unpartitioned_team_idx;
ALTER INDEX usage_events_price_card_idx RENAME TO usage_events_unpartitioned_card_idx;

CREATE TABLE usage_events (
    request_id          text NOT NULL,
    team_id             bigint NOT NULL REFERENCES teams(id),
    key_id              bigint NOT NULL REFERENCES api_keys(id),
    model_requested     text NOT NULL,
    provider            text,
    upstream_model      text,
    attempts            integer NOT NULL DEFAULT 0,
    endpoint            text NOT NULL,
    streamed            boolean NOT NULL,
    http_status         integer NOT NULL,
    error_type          text,
    received_at         timestamptz NOT NULL,
    first_byte_at       timestamptz,
    completed_at        timestamptz NOT NULL,
    prompt_tokens       bigint,
    cache_hit_tokens    bigint,
    cache_miss_tokens   bigint,
    completion_tokens   bigint,
    reasoning_tokens    bigint,
    usage_complete      boolean NOT NULL,
    price_card_id       bigint REFERENCES price_cards(id),
    discount_window_id  bigint REFERENCES discount_windows(id),
    priced_at_instant   timestamptz,
    charge_currency     char(3) REFERENCES currencies(code),
    cost_cache_hit_pico  numeric(40, 0),
    cost_cache_miss_pico numeric(40, 0),
    cost_output_pico     numeric(40, 0),
    cost_reasoning_pico  numeric(40, 0),
    charge_pico          numeric(40, 0),
    pricing_flags        integer,
    PRIMARY KEY (request_id, completed_at)
) PARTITION BY RANGE (completed_at);

-- Rows of a month without a partition yet land here and are moved into their
-- month's partition by the next usage_partitions_ensure(): an insert never
-- fails for want of a partition.
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

-- Indexes for finance: by period; by team, key, provider/model within a
-- period; the priced rows of a card (the price guards of 0002 look them up).
CREATE INDEX usage_events_completed_idx ON usage_events (completed_at);
CREATE INDEX usage_events_team_completed_idx ON usage_events (team_id, completed_at);
CREATE INDEX usage_events_key_completed_idx ON usage_events (key_id, completed_at);
CREATE INDEX usage_events_provider_model_idx ON usage_events (provider, model_requested, completed_at);
CREATE INDEX usage_events_price_card_idx ON usage_events (price_card_id)
    WHERE price_card_id IS NOT NULL;

-- Settings of the ledger: one row. retention_months NULL = keep everything
-- (the default); N = usage_partitions_ensure() keeps the current month and the
-- N months before it and drops older month partitions (the default partition
-- is never dropped). months_ahead: partitions made ahead of the current month.
CREATE TABLE ledger_settings (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    retention_months integer CHECK (retention_months IS NULL OR retention_months >= 1),
    months_ahead     integer NOT NULL DEFAULT 3 CHECK (months_ahead BETWEEN 1 AND 24)
);
INSERT INTO ledger_settings DEFAULT VALUES;

-- Creates the month partition holding instant t (UTC months), named
-- usage_events_yYYYYmMM, moving any of its rows out of the default partition
-- first. Returns true if it created one.
CREATE FUNCTION usage_partition_create(t timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', t AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'usage_events_' || to_char(t AT TIME ZONE 'UTC', '"y"YYYY"m"MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE usage_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM usage_events_default WHERE completed_at >= %L'
                   ' AND completed_at < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   lo, hi, name);
    EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, lo, hi);
    RETURN true;
END $$;

-- Makes sure partitions exist from last month to months_ahead months ahead,
-- and for every month that has rows in the default partition; then applies
-- retention if configured. Safe to call concurrently (an advisory lock
-- serializes callers) and often. Returns the number of partitions created.
CREATE FUNCTION usage_partitions_ensure() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    s ledger_settings;
    made integer := 0;
    m timestamptz;
    p record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tollgate.usage_partitions'));
    SELECT * INTO s FROM ledger_settings;
    FOR m IN SELECT generate_series(now() - interval '1 month',
                                    now() + make_interval(months => COALESCE(s.months_ahead, 3)),
                                    interval '1 month')
    LOOP
        made := made + usage_partition_create(m)::integer;
    END LOOP;
    FOR m IN SELECT DISTINCT date_trunc('month', completed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
             FROM usage_events_default
    LOOP
        made := made + usage_partition_create(m)::integer;
    END LOOP;
    IF s.retention_months IS NOT NULL THEN
        FOR p IN SELECT c.relname
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'usage_events'::regclass
                   AND c.relname ~ '^usage_events_y[0-9]{4}m[0-9]{2}$'
                   AND to_date(substr(c.relname, 15, 4) || substr(c.relname, 20, 2), 'YYYYMM')
                       < (date_trunc('month', now() AT TIME ZONE 'UTC')
                          - make_interval(months => s.retention_months))::date
        LOOP
            EXECUTE format('DROP TABLE %I', p.relname);
        END LOOP;
    END IF;
    RETURN made;
END $$;
REVOKE EXECUTE ON FUNCTION usage_partition_create(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION usage_partitions_ensure() FROM PUBLIC;

-- Existing rows move in, each month into its partition.
SELECT usage_partition_create(m)
FROM (SELECT DISTINCT date_trunc('month', completed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m
      FROM usage_events_unpartitioned) months;
SELECT usage_partitions_ensure();
INSERT INTO usage_events SELECT * FROM usage_events_unpartitioned;
DROP TABLE usage_events_unpartitioned;

-- As in 0002, on the partitioned table, with completed_at added at the end
-- (to select a period; `tollgatectl usage verify` joins on it).
CREATE VIEW usage_charge_recomputed AS
SELECT u.request_id, u.charge_currency, u.pricing_flags, u.charge_pico, r.hit, r.miss, r.output,
       r.reasoning,
       r.hit * p.hit_price + r.miss * p.miss_price + r.output * p.output_price
           + r.reasoning * p.reasoning_price AS recomputed_pico,
       u.completed_at
FROM usage_events u
JOIN price_cards c ON c.id = u.price_card_id
LEFT JOIN discount_windows w ON w.id = u.discount_window_id
CROSS JOIN LATERAL (SELECT
    COALESCE(w.cache_hit_price, c.cache_hit_price)::numeric AS hit_price,
    COALESCE(w.cache_miss_price, c.cache_miss_price)::numeric AS miss_price,
    COALESCE(w.output_price, c.output_price)::numeric AS output_price,
    COALESCE(CASE WHEN w.id IS NOT NULL THEN w.reasoning_price ELSE c.reasoning_price END,
             COALESCE(w.output_price, c.output_price))::numeric AS reasoning_price) p
CROSS JOIN LATERAL (SELECT
    COALESCE(u.cache_hit_tokens, u.prompt_tokens - u.cache_miss_tokens, 0)::numeric AS hit,
    COALESCE(u.cache_miss_tokens, u.prompt_tokens - COALESCE(u.cache_hit_tokens, 0), 0)::numeric AS miss,
    CASE WHEN u.completion_tokens IS NULL THEN 0
         ELSE u.completion_tokens - COALESCE(u.reasoning_tokens, 0) END::numeric AS output,
    COALESCE(u.reasoning_tokens, 0)::numeric AS reasoning) r;

-- Finance's row-level view: every usage row with its team's name and its
-- key's display prefix and name (never the key's hash). Errors: a row with
-- an error_type or an HTTP status of 400 or more.
CREATE VIEW finance_usage AS
SELECT u.request_id, u.completed_at, u.received_at, u.first_byte_at,
       u.team_id, t.name AS team_name, u.key_id, k.display_prefix AS key_prefix,
       k.name AS key_name, u.endpoint, u.model_requested, u.provider, u.upstream_model,
       u.attempts, u.streamed, u.http_status, u.error_type,
       (u.error_type IS NOT NULL OR u.http_status >= 400) AS is_error, u.usage_complete,
       u.prompt_tokens, u.cache_hit_tokens, u.cache_miss_tokens, u.completion_tokens,
       u.reasoning_tokens, u.price_card_id, u.discount_window_id, u.priced_at_instant,
       u.charge_currency, u.cost_cache_hit_pico, u.cost_cache_miss_pico, u.cost_output_pico,
       u.cost_reasoning_pico, u.charge_pico, u.pricing_flags
FROM usage_events u
JOIN teams t ON t.id = u.team_id
JOIN api_keys k ON k.id = u.key_id;

-- Daily rollup (UTC days) per team, key, model, provider and currency.
-- Token sums count unreported (NULL) counts as 0; incomplete_requests says
-- how many rows had incomplete usage; unpriced_requests how many had no price.
CREATE VIEW finance_usage_daily AS
SELECT (u.completed_at AT TIME ZONE 'UTC')::date AS day,
       u.team_id, t.name AS team_name, u.key_id, k.display_prefix AS key_prefix,
       u.model_requested, u.provider, u.charge_currency,
       count(*) AS requests,
       count(*) FILTER (WHERE u.error_type IS NOT NULL OR u.http_status >= 400) AS errors,
       count(*) FILTER (WHERE NOT u.usage_complete) AS incomplete_requests,
       count(*) FILTER (WHERE u.price_card_id IS NULL) AS unpriced_requests,
       COALESCE(sum(u.prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(u.cache_hit_tokens), 0)::bigint AS cache_hit_tokens,
       COALESCE(sum(u.cache_miss_tokens), 0)::bigint AS cache_miss_tokens,
       COALESCE(sum(u.completion_tokens), 0)::bigint AS completion_tokens,
       COALESCE(sum(u.reasoning_tokens), 0)::bigint AS reasoning_tokens,
       COALESCE(sum(u.charge_pico), 0)::numeric(40, 0) AS charge_pico
FROM usage_events u
JOIN teams t ON t.id = u.team_id
JOIN api_keys k ON k.id = u.key_id
GROUP BY 1, u.team_id, t.name, u.key_id, k.display_prefix, u.model_requested, u.provider,
         u.charge_currency;

-- Monthly spend (UTC months) per team, model, provider and currency, with
-- the charge also in the currency's minor units (cents...), rounded half up
-- from pico-units: finance's invoice view.
CREATE VIEW finance_spend_monthly AS
SELECT (date_trunc('month', u.completed_at AT TIME ZONE 'UTC'))::date AS month,
       u.team_id, t.name AS team_name, u.model_requested, u.provider, u.charge_currency,
       count(*) AS requests,
       count(*) FILTER (WHERE u.error_type IS NOT NULL OR u.http_status >= 400) AS errors,
       COALESCE(sum(u.prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(u.cache_hit_tokens), 0)::bigint AS cache_hit_tokens,
       COALESCE(sum(u.cache_miss_tokens), 0)::bigint AS cache_miss_tokens,
       COALESCE(sum(u.completion_tokens), 0)::bigint AS completion_tokens,
       COALESCE(sum(u.reasoning_tokens), 0)::bigint AS reasoning_tokens,
       COALESCE(sum(u.charge_pico), 0)::numeric(40, 0) AS charge_pico,
       CASE WHEN u.charge_currency IS NULL THEN NULL
            ELSE round(COALESCE(sum(u.charge_pico), 0)
                       / (10::numeric ^ (12 - max(c.minor_units))))::numeric(40, 0)
       END AS charge_minor_units
FROM usage_events u
JOIN teams t ON t.id = u.team_id
LEFT JOIN currencies c ON c.code = u.charge_currency
GROUP BY 1, u.team_id, t.name, u.model_requested, u.provider, u.charge_currency;

-- Monthly spend per team and currency only (the top line of an invoice).
CREATE VIEW finance_spend_monthly_team AS
SELECT month, team_id, team_name, charge_currency, sum(requests)::bigint AS requests,
       sum(errors)::bigint AS errors, sum(charge_pico)::numeric(40, 0) AS charge_pico,
       CASE WHEN charge_currency IS NULL THEN NULL
            ELSE round(sum(charge_pico) / (10::numeric ^ (12 - max(c.minor_units))))::numeric(40, 0)
       END AS charge_minor_units
FROM finance_spend_monthly f
LEFT JOIN currencies c ON c.code = f.charge_currency
GROUP BY month, team_id, team_name, charge_currency;

-- Read access for the finance role, when the administrator has created it
-- (migrations/roles.sql, run with the admin connection; it grants these
-- again, so the order does not matter).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tollgate_finance') THEN
        GRANT SELECT ON finance_usage, finance_usage_daily, finance_spend_monthly,
            finance_spend_monthly_team, usage_charge_recomputed TO tollgate_finance;
    END IF;
END $$;
