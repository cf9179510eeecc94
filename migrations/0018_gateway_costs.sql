-- 0018: costs the gateway bears itself, apart from every team's usage. Today
-- one kind: the cancelled loser of a hedged request (docs/router.md,
-- "Hedging"): a provider may still bill the prompt it began to process, but
-- that is the gateway's money, never the key's. One row per (request,
-- attempt), written exactly once by the usage writer through the same spool
-- as usage rows (docs/ledger.md); no trigger, view or rollup of usage_events
-- reads this table, so it counts in no team's spend, budget or usage rows.
-- docs/finance.md documents the table and the views.
--
-- team_id and key_id say whose request caused the cost; they are
-- informational and carry no foreign key, unlike usage_events (whose rows
-- are charges to that team and key and must name real ones): a cost row
-- must never be refused, and so lost, over who caused it. Price card and
-- discount window keep their foreign keys, as in usage_events, so that
-- every priced row can be recomputed from the price tables.

CREATE TABLE gateway_costs (
    request_id         text NOT NULL,
    attempt            integer NOT NULL CHECK (attempt >= 1),
    reason             text NOT NULL CHECK (reason IN ('hedge_loser')),
    team_id            bigint NOT NULL,
    key_id             bigint NOT NULL,
    model_requested    text NOT NULL,
    provider           text NOT NULL,
    upstream_model     text NOT NULL,
    sent_at            timestamptz NOT NULL,
    cancelled_at       timestamptz NOT NULL,
    prompt_tokens      bigint CHECK (prompt_tokens >= 0), -- the gateway's count; NULL: none
    prompt_exact       boolean NOT NULL,                  -- false: an estimate
    usage_complete     boolean NOT NULL,                  -- false: the provider may bill otherwise
    price_card_id      bigint REFERENCES price_cards(id), -- NULL: not priced
    discount_window_id bigint REFERENCES discount_windows(id),
    charge_currency    char(3) REFERENCES currencies(code),
    charge_pico        numeric(40, 0),                    -- pico-units of charge_currency
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, attempt),
    CHECK ((price_card_id IS NULL) = (charge_pico IS NULL)
           AND (price_card_id IS NULL) = (charge_currency IS NULL)),
    CHECK (discount_window_id IS NULL OR price_card_id IS NOT NULL)
);
CREATE INDEX gateway_costs_cancelled_idx ON gateway_costs (cancelled_at);
CREATE INDEX gateway_costs_provider_idx ON gateway_costs (provider, cancelled_at);

-- Every priced row with its charge recomputed from the price tables alone,
-- as the pricing library prices a prompt that was all cache misses and no
-- output: prompt_tokens x the window's cache-miss price if a window applied,
-- else the card's (micro-units per 1M tokens x tokens = pico-units).
CREATE VIEW gateway_costs_charge_recomputed AS
SELECT g.request_id, g.attempt, g.cancelled_at, g.charge_currency, g.prompt_tokens,
       g.charge_pico,
       COALESCE(g.prompt_tokens, 0)::numeric
           * COALESCE(w.cache_miss_price, c.cache_miss_price)::numeric AS recomputed_pico,
       c.currency AS card_currency
FROM gateway_costs g
JOIN price_cards c ON c.id = g.price_card_id
LEFT JOIN discount_windows w ON w.id = g.discount_window_id;

-- For finance: every row (with the causing team's name, when it still
-- exists), and a daily summary per provider, model, reason and currency.
CREATE VIEW finance_gateway_costs AS
SELECT g.request_id, g.attempt, g.reason, g.cancelled_at, g.sent_at, g.team_id,
       t.name AS team_name, g.key_id, g.model_requested, g.provider, g.upstream_model,
       g.prompt_tokens, g.prompt_exact, g.usage_complete, g.price_card_id,
       g.discount_window_id, g.charge_currency, g.charge_pico
FROM gateway_costs g
LEFT JOIN teams t ON t.id = g.team_id;

CREATE VIEW finance_gateway_costs_daily AS
SELECT (g.cancelled_at AT TIME ZONE 'UTC')::date AS day, g.provider, g.upstream_model, g.reason,
       g.charge_currency, count(*)::bigint AS attempts,
       count(*) FILTER (WHERE NOT g.prompt_exact)::bigint AS estimated,
       count(*) FILTER (WHERE NOT g.usage_complete)::bigint AS incomplete,
       count(*) FILTER (WHERE g.price_card_id IS NULL)::bigint AS unpriced,
       COALESCE(sum(g.prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(g.charge_pico), 0)::numeric(40, 0) AS charge_pico,
       CASE WHEN g.charge_currency IS NULL THEN NULL
            ELSE round(COALESCE(sum(g.charge_pico), 0)
                       / (10::numeric ^ (12 - max(cur.minor_units))))::numeric(40, 0)
       END AS charge_minor_units
FROM gateway_costs g
LEFT JOIN currencies cur ON cur.code = g.charge_currency
GROUP BY 1, g.provider, g.upstream_model, g.reason, g.charge_currency;

-- Read access for the finance role, when the administrator has created it
-- (migrations/roles.sql grants these again, so the order does not matter).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tollgate_finance') THEN
        GRANT SELECT ON finance_gateway_costs, finance_gateway_costs_daily,
            gateway_costs_charge_recomputed TO tollgate_finance;
    END IF;
END $$;
