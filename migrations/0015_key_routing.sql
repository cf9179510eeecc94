-- 0015: routing rules and routing defaults per API key (docs/router.md,
-- "Per-key rules and defaults"). Rules narrow where a key's requests may go
-- and no request header can widen them; defaults are the key's needs when a
-- request states none, and a request header overrides them.
--  private            the key may use in-house providers only (as a private team's keys)
--  allow_providers    NULL: every provider; else only these (provider names as in the
--                     gateway's config and the price cards)
--  deny_providers     NULL or empty: none; else never these
--  latency_target_ms  default latency target (streams: to the first token; else the
--                     whole answer); NULL = none
--  max_cost           default ceiling on a request's expected cost, in each provider's
--                     price-card currency (at most 12 decimals); NULL = none
--  route_preference   default preference: cheapest | fastest | balanced; NULL = the
--                     model's policy
-- A change to any of them NOTIFYs running gateways through the api_keys
-- trigger of 0001, like a revocation.
ALTER TABLE api_keys
    ADD COLUMN private boolean NOT NULL DEFAULT false,
    ADD COLUMN allow_providers text[]
        CONSTRAINT api_keys_allow_providers_check CHECK (
            cardinality(allow_providers) >= 1
            AND octet_length(array_to_string(allow_providers, ',')) <= 255
            AND array_to_string(allow_providers, ',') ~ '^[A-Za-z0-9._:/@+-]+(,[A-Za-z0-9._:/@+-]+)*$'),
    ADD COLUMN deny_providers text[]
        CONSTRAINT api_keys_deny_providers_check CHECK (
            cardinality(deny_providers) = 0
            OR (octet_length(array_to_string(deny_providers, ',')) <= 255
                AND array_to_string(deny_providers, ',') ~ '^[A-Za-z0-9._:/@+-]+(,[A-Za-z0-9._:/@+-]+)*$')),
    ADD COLUMN latency_target_ms integer
        CONSTRAINT api_keys_latency_target_check CHECK (latency_target_ms BETWEEN 1 AND 3600000),
    ADD COLUMN max_cost numeric
        CONSTRAINT api_keys_max_cost_check CHECK (max_cost >= 0 AND max_cost <= 1000000
                                                  AND scale(max_cost) <= 12),
    ADD COLUMN route_preference text
        CONSTRAINT api_keys_route_preference_check CHECK (
            route_preference IN ('cheapest', 'fastest', 'balanced')),
    -- a provider both allowed and denied is a contradiction: refuse it
    ADD CONSTRAINT api_keys_allow_deny_disjoint CHECK (NOT (allow_providers && deny_providers));
