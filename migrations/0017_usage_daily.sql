-- 0017: daily usage rollups kept up to date by PostgreSQL itself, so that the
-- finance views read one row per day and group instead of every usage row
-- (at 1.5 million rows the daily view took 3.5 s; a month of a busy gateway
-- is tens of millions). docs/finance.md documents the table and the change.
--
-- usage_daily holds, per UTC day of completed_at, team, key, requested
-- model, provider and currency, exactly the sums finance_usage_daily
-- computed from the rows. Statement-level triggers on usage_events keep it:
-- the rows a statement inserted (ON CONFLICT DO NOTHING skips are not in
-- its transition table), deleted or changed are added or subtracted in the
-- same transaction, so it is exact at every commit. Statements that name a
-- partition rather than usage_events (usage_partition_create moving rows
-- out of the default partition) and dropped partitions (retention) leave it
-- unchanged: a move changes no sum, and the days whose rows retention
-- dropped keep their rollup. finance_usage_daily and finance_spend_monthly
-- read it from now on, with the same columns as before.

-- No usage row may be written between the backfill below and the trigger:
-- writers wait for this migration (the usage writer retries).
LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE usage_daily (
    day                 date NOT NULL,
    team_id             bigint NOT NULL,
    key_id              bigint NOT NULL,
    model_requested     text NOT NULL,
    provider            text,
    charge_currency     char(3),
    requests            bigint NOT NULL,
    errors              bigint NOT NULL,
    incomplete_requests bigint NOT NULL,
    unpriced_requests   bigint NOT NULL,
    prompt_tokens       bigint NOT NULL,
    cache_hit_tokens    bigint NOT NULL,
    cache_miss_tokens   bigint NOT NULL,
    completion_tokens   bigint NOT NULL,
    reasoning_tokens    bigint NOT NULL,
    charge_pico         numeric(40, 0) NOT NULL,
    UNIQUE NULLS NOT DISTINCT (day, team_id, key_id, model_requested, provider, charge_currency)
);
CREATE INDEX usage_daily_team_day_idx ON usage_daily (team_id, day);

-- The statement that adds (sign 1) or subtracts (sign -1) the rows of
-- transition table `rows` to usage_daily, groups in key order (two writers
-- lock the same rows in the same order: no deadlock). Only the trigger
-- function can run it: a transition table is visible only there.
CREATE FUNCTION usage_daily_merge_sql(rows text, sign integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
        INSERT INTO usage_daily AS d
        SELECT (completed_at AT TIME ZONE 'UTC')::date, team_id, key_id, model_requested,
               provider, charge_currency,
               %1$s * count(*),
               %1$s * count(*) FILTER (WHERE error_type IS NOT NULL OR http_status >= 400),
               %1$s * count(*) FILTER (WHERE NOT usage_complete),
               %1$s * count(*) FILTER (WHERE price_card_id IS NULL),
               %1$s * COALESCE(sum(prompt_tokens), 0), %1$s * COALESCE(sum(cache_hit_tokens), 0),
               %1$s * COALESCE(sum(cache_miss_tokens), 0),
               %1$s * COALESCE(sum(completion_tokens), 0),
               %1$s * COALESCE(sum(reasoning_tokens), 0), %1$s * COALESCE(sum(charge_pico), 0)
        FROM %2$I
        GROUP BY 1, 2, 3, 4, 5, 6
        ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (day, team_id, key_id, model_requested, provider, charge_currency)
        DO UPDATE SET requests = d.requests + EXCLUDED.requests,
                      errors = d.errors + EXCLUDED.errors,
                      incomplete_requests = d.incomplete_requests + EXCLUDED.incomplete_requests,
                      unpriced_requests = d.unpriced_requests + EXCLUDED.unpriced_requests,
                      prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
                      cache_hit_tokens = d.cache_hit_tokens + EXCLUDED.cache_hit_tokens,
                      cache_miss_tokens = d.cache_miss_tokens + EXCLUDED.cache_miss_tokens,
                      completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
                      reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens,
                      charge_pico = d.charge_pico + EXCLUDED.charge_pico$q$, sign, rows)
$f$;

-- The trigger function: subtracts the old rows (UPDATE, DELETE), adds the
-- new ones (INSERT, UPDATE), then deletes groups left with no request.
CREATE FUNCTION usage_daily_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE usage_daily_merge_sql('old_rows', -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE usage_daily_merge_sql('new_rows', 1);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM usage_daily WHERE requests = 0;
    END IF;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION usage_daily_merge_sql(text, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION usage_daily_apply() FROM PUBLIC;

CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply();
CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply();
CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply();

-- Recomputes the days [from_day, to_day) from the rows (after a TRUNCATE or
-- other surgery that bypassed the triggers). Days outside keep their sums.
-- Returns the number of groups written.
CREATE FUNCTION usage_daily_rebuild(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM usage_daily WHERE day >= from_day AND day < to_day;
    INSERT INTO usage_daily
    SELECT (completed_at AT TIME ZONE 'UTC')::date, team_id, key_id, model_requested, provider,
           charge_currency, count(*),
           count(*) FILTER (WHERE error_type IS NOT NULL OR http_status >= 400),
           count(*) FILTER (WHERE NOT usage_complete), count(*) FILTER (WHERE price_card_id IS NULL),
           COALESCE(sum(prompt_tokens), 0), COALESCE(sum(cache_hit_tokens), 0),
           COALESCE(sum(cache_miss_tokens), 0), COALESCE(sum(completion_tokens), 0),
           COALESCE(sum(reasoning_tokens), 0), COALESCE(sum(charge_pico), 0)
    FROM usage_events
    WHERE completed_at >= from_day::timestamp AT TIME ZONE 'UTC'
      AND completed_at < to_day::timestamp AT TIME ZONE 'UTC'
    GROUP BY 1, 2, 3, 4, 5, 6;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION usage_daily_rebuild(date, date) FROM PUBLIC;

-- The rows already there.
SELECT usage_daily_rebuild('-infinity', 'infinity');

-- The views read the rollup: same columns, same meaning (docs/finance.md).
CREATE OR REPLACE VIEW finance_usage_daily AS
SELECT d.day, d.team_id, t.name AS team_name, d.key_id, k.display_prefix AS key_prefix,
       d.model_requested, d.provider, d.charge_currency,
       d.requests, d.errors, d.incomplete_requests, d.unpriced_requests,
       d.prompt_tokens, d.cache_hit_tokens, d.cache_miss_tokens, d.completion_tokens,
       d.reasoning_tokens, d.charge_pico
FROM usage_daily d
JOIN teams t ON t.id = d.team_id
JOIN api_keys k ON k.id = d.key_id;

CREATE OR REPLACE VIEW finance_spend_monthly AS
SELECT (date_trunc('month', d.day))::date AS month,
       d.team_id, t.name AS team_name, d.model_requested, d.provider, d.charge_currency,
       sum(d.requests)::bigint AS requests,
       sum(d.errors)::bigint AS errors,
       sum(d.prompt_tokens)::bigint AS prompt_tokens,
       sum(d.cache_hit_tokens)::bigint AS cache_hit_tokens,
       sum(d.cache_miss_tokens)::bigint AS cache_miss_tokens,
       sum(d.completion_tokens)::bigint AS completion_tokens,
       sum(d.reasoning_tokens)::bigint AS reasoning_tokens,
       sum(d.charge_pico)::numeric(40, 0) AS charge_pico,
       CASE WHEN d.charge_currency IS NULL THEN NULL
            ELSE round(sum(d.charge_pico)
                       / (10::numeric ^ (12 - max(c.minor_units))))::numeric(40, 0)
       END AS charge_minor_units
FROM usage_daily d
JOIN teams t ON t.id = d.team_id
LEFT JOIN currencies c ON c.code = d.charge_currency
GROUP BY 1, d.team_id, t.name, d.model_requested, d.provider, d.charge_currency;
