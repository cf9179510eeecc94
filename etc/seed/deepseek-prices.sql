-- DeepSeek's published price history (../shared/brief/PRICES.md), as price
-- cards and discount windows, in USD and CNY. Load after migrations 0001-0002:
--
--   psql "$TG_PG_CONNINFO" -v ON_ERROR_STOP=1 -f etc/seed/deepseek-prices.sql
--
-- One transaction: all or nothing. Safe to re-run (rows already there are
-- kept, nothing is duplicated). Every row is audited with actor 'seed'.
--
-- A DeepSeek account bills in one currency, so each currency is its own
-- provider (billing account): "deepseek" (USD) and "deepseek-cny" (CNY).
-- Prices are micro-units per 1M tokens: $0.27 = 270000, ¥0.5 = 500000.
-- Dates the brief gives without a time are taken as 00:00 UTC.
-- Not seeded: CNY prices for V3.2 (not in the brief); the 2026 peak/off-peak
-- scheme (only reported by third parties, and without holiday dates).
BEGIN;
SET LOCAL tollgate.actor = 'seed';

INSERT INTO price_providers (provider, tier_instant, created_by) VALUES
    ('deepseek', 'completion', 'seed'),     -- "The completion timestamp of each
    ('deepseek-cny', 'completion', 'seed')  --  request determines its pricing tier."
ON CONFLICT (provider) DO NOTHING;

INSERT INTO price_cards (provider, model, currency, cache_hit_price, cache_miss_price,
                         output_price, effective_from, note, created_by) VALUES
    -- V3 launch. Standard prices; the 45-day promotion is a window on this card.
    ('deepseek',     'deepseek-chat',     'USD',   70000,  270000,  1100000, '2024-12-26 00:00:00+00', 'V3 standard (promotion window until 2025-02-08 16:00 UTC)', 'seed'),
    ('deepseek-cny', 'deepseek-chat',     'CNY',  500000, 2000000,  8000000, '2024-12-26 00:00:00+00', 'V3 standard (promotion window until 2025-02-08 16:00 UTC)', 'seed'),
    -- R1, not in the promotion.
    ('deepseek',     'deepseek-reasoner', 'USD',  140000,  550000,  2190000, '2025-01-20 00:00:00+00', 'R1', 'seed'),
    ('deepseek-cny', 'deepseek-reasoner', 'CNY', 1000000, 4000000, 16000000, '2025-01-20 00:00:00+00', 'R1', 'seed'),
    -- Promotion ended 2025-02-08 24:00 Beijing = 16:00 UTC; the off-peak window hangs on these.
    ('deepseek',     'deepseek-chat',     'USD',   70000,  270000,  1100000, '2025-02-08 16:00:00+00', 'V3 after the promotion', 'seed'),
    ('deepseek-cny', 'deepseek-chat',     'CNY',  500000, 2000000,  8000000, '2025-02-08 16:00:00+00', 'V3 after the promotion', 'seed'),
    -- V3.1: chat and reasoner share prices; off-peak discount ended.
    ('deepseek',     'deepseek-chat',     'USD',   70000,  560000,  1680000, '2025-09-05 16:00:00+00', 'V3.1', 'seed'),
    ('deepseek',     'deepseek-reasoner', 'USD',   70000,  560000,  1680000, '2025-09-05 16:00:00+00', 'V3.1', 'seed'),
    ('deepseek-cny', 'deepseek-chat',     'CNY',  500000, 4000000, 12000000, '2025-09-05 16:00:00+00', 'V3.1', 'seed'),
    ('deepseek-cny', 'deepseek-reasoner', 'CNY',  500000, 4000000, 12000000, '2025-09-05 16:00:00+00', 'V3.1', 'seed'),
    -- V3.2 (USD only in the brief).
    ('deepseek',     'deepseek-chat',     'USD',   28000,  280000,   420000, '2025-09-29 00:00:00+00', 'V3.2', 'seed'),
    ('deepseek',     'deepseek-reasoner', 'USD',   28000,  280000,   420000, '2025-09-29 00:00:00+00', 'V3.2', 'seed')
ON CONFLICT (provider, model, effective_from) DO NOTHING;

-- Windows. card: provider, model, effective_from of the card they discount.
WITH w (provider, model, card_from, kind, precedence, valid_from, valid_until, zone,
        start_second, end_second, percent_off_bp, hit, miss, out, note) AS (VALUES
    -- The V3 promotion: explicit prices, one-off range.
    ('deepseek', 'deepseek-chat', timestamptz '2024-12-26 00:00:00+00', 'once', 10,
     timestamptz '2024-12-26 00:00:00+00', timestamptz '2025-02-08 16:00:00+00', NULL::text,
     NULL::integer, NULL::integer, NULL::integer, 14000::bigint, 140000::bigint, 280000::bigint,
     'V3 45-day promotion'),
    ('deepseek-cny', 'deepseek-chat', '2024-12-26 00:00:00+00', 'once', 10,
     '2024-12-26 00:00:00+00', '2025-02-08 16:00:00+00', NULL,
     NULL, NULL, NULL, 100000, 1000000, 2000000, 'V3 45-day promotion'),
    -- Off-peak, daily UTC 16:30-00:30 (Beijing 00:30-08:30), 2025-02-26 16:30 to 2025-09-05 16:00.
    -- chat: 50% off, converted on insert (0.035 / 0.135 / 0.55 and ¥0.25 / 1 / 4).
    ('deepseek', 'deepseek-chat', '2025-02-08 16:00:00+00', 'daily', 10,
     '2025-02-26 16:30:00+00', '2025-09-05 16:00:00+00', 'UTC', 59400, 1800, 5000, NULL, NULL, NULL,
     'off-peak: chat 50% off'),
    ('deepseek-cny', 'deepseek-chat', '2025-02-08 16:00:00+00', 'daily', 10,
     '2025-02-26 16:30:00+00', '2025-09-05 16:00:00+00', 'UTC', 59400, 1800, 5000, NULL, NULL, NULL,
     'off-peak: chat 50% off'),
    -- reasoner "75% off": in CNY exactly 25% of ¥1/4/16; in USD DeepSeek published
    -- 0.035/0.135/0.55, which is not exactly 25% of 0.14/0.55/2.19 (0.035/0.1375/0.5475):
    -- the published prices are what is charged, so they are explicit.
    ('deepseek', 'deepseek-reasoner', '2025-01-20 00:00:00+00', 'daily', 10,
     '2025-02-26 16:30:00+00', '2025-09-05 16:00:00+00', 'UTC', 59400, 1800, NULL, 35000, 135000, 550000,
     'off-peak: reasoner 75% off (published USD prices)'),
    ('deepseek-cny', 'deepseek-reasoner', '2025-01-20 00:00:00+00', 'daily', 10,
     '2025-02-26 16:30:00+00', '2025-09-05 16:00:00+00', 'UTC', 59400, 1800, 7500, NULL, NULL, NULL,
     'off-peak: reasoner 75% off')
)
INSERT INTO discount_windows (card_id, kind, precedence, valid_from, valid_until, zone,
                              start_second, end_second, percent_off_bp, cache_hit_price,
                              cache_miss_price, output_price, note, created_by)
SELECT c.id, w.kind, w.precedence, w.valid_from, w.valid_until, w.zone, w.start_second,
       w.end_second, w.percent_off_bp, w.hit, w.miss, w.out, w.note, 'seed'
FROM w JOIN price_cards c
  ON c.provider = w.provider AND c.model = w.model AND c.effective_from = w.card_from
WHERE NOT EXISTS (SELECT 1 FROM discount_windows d
                  WHERE d.card_id = c.id AND d.kind = w.kind AND d.valid_from = w.valid_from
                    AND d.precedence = w.precedence);

COMMIT;
