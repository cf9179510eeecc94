-- 0002: prices. Currencies, price cards, discount windows, holiday calendars,
-- the per-provider tier instant, the charge columns of usage rows, and the
-- triggers that keep charged history immutable, audit every change and tell
-- running gateways to reload. The model is described in docs/pricing.md.
-- Money is integers only: prices in micro-units of the currency per 1M tokens,
-- costs in pico-units (numeric(40,0)). Released migrations are never edited.

-- Who is changing prices: admin paths run `SET LOCAL tollgate.actor = '<who>'`
-- in their transaction; without it the row's created_by (or the session user)
-- is recorded.
CREATE FUNCTION tollgate_actor(fallback text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('tollgate.actor', true), ''), fallback, session_user::text)
$$;

-- Same list as pricing/pr_currency.c (a test compares them).
CREATE TABLE currencies (
    code        char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);
INSERT INTO currencies (code, minor_units) VALUES
    ('AED', 2),
    ('AUD', 2),
    ('BHD', 3),
    ('BRL', 2),
    ('CAD', 2),
    ('CHF', 2),
    ('CNY', 2),
    ('CZK', 2),
    ('DKK', 2),
    ('EUR', 2),
    ('GBP', 2),
    ('HKD', 2),
    ('IDR', 2),
    ('ILS', 2),
    ('INR', 2),
    ('JPY', 0),
    ('KRW', 0),
    ('KWD', 3),
    ('MXN', 2),
    ('NOK', 2),
    ('NZD', 2),
    ('PLN', 2),
    ('SAR', 2),
    ('SEK', 2),
    ('SGD', 2),
    ('THB', 2),
    ('TRY', 2),
    ('TWD', 2),
    ('USD', 2),
    ('VND', 0),
    ('ZAR', 2);

-- Which instant of a request decides its price tier. Providers without a row
-- use 'completion' (DeepSeek's rule).
CREATE TABLE price_providers (
    provider     text PRIMARY KEY CHECK (provider <> '' AND octet_length(provider) < 64),
    tier_instant text NOT NULL DEFAULT 'completion' CHECK (tier_instant IN ('completion', 'start')),
    created_by   text NOT NULL CHECK (created_by <> ''),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A price card is in force from effective_from until the next card of the same
-- provider and model. Prices: micro-units per 1M tokens, capped at 10^12.
-- reasoning_price NULL = reasoning tokens cost the output price.
CREATE TABLE price_cards (
    id               bigserial PRIMARY KEY,
    provider         text NOT NULL CHECK (provider <> '' AND octet_length(provider) < 64),
    model            text NOT NULL CHECK (model <> '' AND octet_length(model) < 128),
    currency         char(3) NOT NULL REFERENCES currencies(code),
    cache_hit_price  bigint NOT NULL CHECK (cache_hit_price BETWEEN 0 AND 1000000000000),
    cache_miss_price bigint NOT NULL CHECK (cache_miss_price BETWEEN 0 AND 1000000000000),
    output_price     bigint NOT NULL CHECK (output_price BETWEEN 0 AND 1000000000000),
    reasoning_price  bigint CHECK (reasoning_price BETWEEN 0 AND 1000000000000),
    effective_from   timestamptz NOT NULL,
    note             text,
    created_by       text NOT NULL CHECK (created_by <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, model, effective_from)
);

CREATE VIEW price_card_history AS
SELECT c.*, lead(c.effective_from) OVER (PARTITION BY c.provider, c.model
                                         ORDER BY c.effective_from) AS effective_until
FROM price_cards c;

-- Holiday calendars: local dates in a named IANA zone.
CREATE TABLE holiday_calendars (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    zone       text NOT NULL,
    note       text,
    created_by text NOT NULL CHECK (created_by <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE holiday_dates (
    calendar_id bigint NOT NULL REFERENCES holiday_calendars(id),
    day         date NOT NULL,
    name        text,
    created_by  text NOT NULL CHECK (created_by <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (calendar_id, day)
);

-- Discount windows replace a card's prices while they apply:
--   once:    [valid_from, valid_until)                        (promotions)
--   daily:   local [start_second, end_second) in `zone`, every day whose bit
--            is set in weekdays (bit 0 = Monday .. bit 6 = Sunday; the day an
--            occurrence STARTS), end <= start wraps past midnight; calendar_id
--            optionally excludes occurrences starting on its dates
--   holiday: every local date of calendar_id (in the calendar's zone)
-- all within [valid_from, valid_until) (valid_until NULL = open). Higher
-- precedence wins; equal precedences that can overlap are refused by the
-- pricing library's validation (pr_book_finalize) before the admin path commits.
-- Prices are explicit; when percent_off_bp is given they are computed on insert
-- from the card by pricing_percent_off (half-even to the micro-unit), as the
-- library's pr_price_percent_off does.
CREATE TABLE discount_windows (
    id               bigserial PRIMARY KEY,
    card_id          bigint NOT NULL REFERENCES price_cards(id),
    kind             text NOT NULL CHECK (kind IN ('once', 'daily', 'holiday')),
    precedence       integer NOT NULL DEFAULT 0,
    valid_from       timestamptz NOT NULL,
    valid_until      timestamptz,
    zone             text,
    start_second     integer,
    end_second       integer,
    weekdays         smallint NOT NULL DEFAULT 127 CHECK (weekdays BETWEEN 1 AND 127),
    calendar_id      bigint REFERENCES holiday_calendars(id),
    percent_off_bp   integer CHECK (percent_off_bp BETWEEN 0 AND 10000),
    cache_hit_price  bigint NOT NULL CHECK (cache_hit_price BETWEEN 0 AND 1000000000000),
    cache_miss_price bigint NOT NULL CHECK (cache_miss_price BETWEEN 0 AND 1000000000000),
    output_price     bigint NOT NULL CHECK (output_price BETWEEN 0 AND 1000000000000),
    reasoning_price  bigint CHECK (reasoning_price BETWEEN 0 AND 1000000000000),
    note             text,
    created_by       text NOT NULL CHECK (created_by <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT window_ends_after_start CHECK (valid_until IS NULL OR valid_until > valid_from),
    CONSTRAINT daily_fields CHECK (kind <> 'daily' OR (zone IS NOT NULL
        AND start_second BETWEEN 0 AND 86399 AND end_second BETWEEN 1 AND 86400
        AND start_second <> end_second)),
    CONSTRAINT non_daily_fields CHECK (kind = 'daily' OR (zone IS NULL
        AND start_second IS NULL AND end_second IS NULL AND weekdays = 127)),
    CONSTRAINT holiday_needs_calendar CHECK (kind <> 'holiday' OR calendar_id IS NOT NULL),
    CONSTRAINT once_has_no_calendar CHECK (kind <> 'once' OR calendar_id IS NULL)
);
CREATE INDEX discount_windows_card_idx ON discount_windows (card_id);

CREATE FUNCTION pricing_percent_off(price bigint, bp integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN 2 * r > 10000 OR (2 * r = 10000 AND q % 2 = 1) THEN q + 1 ELSE q END
    FROM (SELECT (price * (10000 - bp)) / 10000 AS q, (price * (10000 - bp)) % 10000 AS r) s
$$;

-- Every usage row keeps what priced it, so finance can recompute any charge:
-- the card, the window (NULL: none), the instant that decided, each component
-- and the total in pico-units of charge_currency, and the pricing flags
-- (pricing/pr_book.h PR_FLAG_*: non-zero = priced on incomplete counts).
ALTER TABLE usage_events
    ADD COLUMN price_card_id       bigint REFERENCES price_cards(id),
    ADD COLUMN discount_window_id  bigint REFERENCES discount_windows(id),
    ADD COLUMN priced_at_instant   timestamptz,
    ADD COLUMN charge_currency     char(3) REFERENCES currencies(code),
    ADD COLUMN cost_cache_hit_pico  numeric(40, 0),
    ADD COLUMN cost_cache_miss_pico numeric(40, 0),
    ADD COLUMN cost_output_pico     numeric(40, 0),
    ADD COLUMN cost_reasoning_pico  numeric(40, 0),
    ADD COLUMN charge_pico          numeric(40, 0),
    ADD COLUMN pricing_flags        integer;
CREATE INDEX usage_events_price_card_idx ON usage_events (price_card_id)
    WHERE price_card_id IS NOT NULL;

-- Finance: every priced usage row with its charge recomputed from the price
-- tables alone (window prices if a window applied, else the card's). For rows
-- with pricing_flags = 0, recomputed_pico = charge_pico always; a test checks it.
CREATE VIEW usage_charge_recomputed AS
SELECT u.request_id, u.charge_currency, u.pricing_flags, u.charge_pico, r.hit, r.miss, r.output,
       r.reasoning,
       r.hit * p.hit_price + r.miss * p.miss_price + r.output * p.output_price
           + r.reasoning * p.reasoning_price AS recomputed_pico
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

-- Zones must exist in the tz database (PostgreSQL's copy is the system tzdata
-- on Debian; the gateway's loader checks again with the library).
CREATE FUNCTION pricing_check_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.zone IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.zone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', NEW.zone USING ERRCODE = 'check_violation';
    END IF;
    -- A daily window excludes the dates of a calendar by the local date its
    -- occurrences start on: both must use the same zone (as pr_book_finalize checks).
    IF TG_TABLE_NAME = 'discount_windows' THEN  -- nested: NEW.kind exists only there
        IF NEW.kind = 'daily' AND NEW.calendar_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM holiday_calendars h
                           WHERE h.id = NEW.calendar_id AND h.zone = NEW.zone) THEN
            RAISE EXCEPTION 'daily window in zone % excludes calendar % of another zone (or none)',
                NEW.zone, NEW.calendar_id USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER holiday_calendars_zone BEFORE INSERT OR UPDATE ON holiday_calendars
    FOR EACH ROW EXECUTE FUNCTION pricing_check_zone();
CREATE TRIGGER discount_windows_zone BEFORE INSERT OR UPDATE ON discount_windows
    FOR EACH ROW EXECUTE FUNCTION pricing_check_zone();

-- Charged history is never edited in place (docs/pricing.md, "Immutability"):
--  * a card that has priced usage cannot be updated or deleted;
--  * a new card cannot take effect at or before usage already charged for the
--    same provider and model (it would re-price it);
--  * a window of a card that has priced usage can only be ended: valid_until
--    set or moved to an instant not in the past, nothing else changed, never
--    deleted; a new window on such a card must start after the charged usage.
CREATE FUNCTION pricing_card_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM usage_events u JOIN price_cards c ON c.id = u.price_card_id
                   WHERE c.provider = NEW.provider AND c.model = NEW.model
                     AND u.priced_at_instant >= NEW.effective_from) THEN
            RAISE EXCEPTION 'price card for %/% from % would re-price usage already charged: choose a later effective_from',
                NEW.provider, NEW.model, NEW.effective_from USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM usage_events WHERE price_card_id = OLD.id) THEN
        RAISE EXCEPTION 'price card % has priced usage and is never edited in place: add a new card that takes over from an instant',
            OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER price_cards_guard BEFORE INSERT OR UPDATE OR DELETE ON price_cards
    FOR EACH ROW EXECUTE FUNCTION pricing_card_guard();

CREATE FUNCTION pricing_window_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    card price_cards;
    last_charged timestamptz;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT * INTO card FROM price_cards WHERE id = NEW.card_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'window refers to unknown price card %', NEW.card_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF NEW.percent_off_bp IS NOT NULL THEN
            IF NEW.cache_hit_price IS NOT NULL OR NEW.cache_miss_price IS NOT NULL
               OR NEW.output_price IS NOT NULL OR NEW.reasoning_price IS NOT NULL THEN
                RAISE EXCEPTION 'window gives both percent_off_bp and explicit prices: give one'
                    USING ERRCODE = 'check_violation';
            END IF;
            NEW.cache_hit_price := pricing_percent_off(card.cache_hit_price, NEW.percent_off_bp);
            NEW.cache_miss_price := pricing_percent_off(card.cache_miss_price, NEW.percent_off_bp);
            NEW.output_price := pricing_percent_off(card.output_price, NEW.percent_off_bp);
            NEW.reasoning_price := pricing_percent_off(card.reasoning_price, NEW.percent_off_bp);
        END IF;
        SELECT max(priced_at_instant) INTO last_charged FROM usage_events WHERE price_card_id = NEW.card_id;
        IF last_charged IS NOT NULL AND NEW.valid_from <= last_charged THEN
            RAISE EXCEPTION 'window on card % from % would re-price usage already charged (last at %)',
                NEW.card_id, NEW.valid_from, last_charged USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM usage_events WHERE price_card_id = OLD.card_id) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'window % belongs to a card with priced usage: end it (valid_until) instead of deleting',
            OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF (to_jsonb(NEW) - 'valid_until' - 'note') IS DISTINCT FROM (to_jsonb(OLD) - 'valid_until' - 'note')
       OR (OLD.valid_until IS NOT NULL AND OLD.valid_until < now())
       OR NEW.valid_until IS NULL OR NEW.valid_until < now() THEN
        RAISE EXCEPTION 'window % belongs to a card with priced usage: only valid_until may change, to an instant not in the past',
            OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER discount_windows_guard BEFORE INSERT OR UPDATE OR DELETE ON discount_windows
    FOR EACH ROW EXECUTE FUNCTION pricing_window_guard();

-- Audit: every change to price data, with who, when, before and after.
CREATE FUNCTION pricing_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    a jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    r jsonb := COALESCE(a, b);
BEGIN
    INSERT INTO audit_log (actor, action, object, before, after)
    VALUES (tollgate_actor(r->>'created_by'), lower(TG_OP),
            TG_TABLE_NAME || '/' || COALESCE(r->>'id', r->>'provider',
                                             (r->>'calendar_id') || '/' || (r->>'day')),
            b, a);
    RETURN NULL;
END $$;

-- Running gateways LISTEN on 'tollgate_prices' and rebuild their price book.
CREATE FUNCTION pricing_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tollgate_prices', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER price_providers_audit AFTER INSERT OR UPDATE OR DELETE ON price_providers
    FOR EACH ROW EXECUTE FUNCTION pricing_audit();
CREATE TRIGGER price_cards_audit AFTER INSERT OR UPDATE OR DELETE ON price_cards
    FOR EACH ROW EXECUTE FUNCTION pricing_audit();
CREATE TRIGGER discount_windows_audit AFTER INSERT OR UPDATE OR DELETE ON discount_windows
    FOR EACH ROW EXECUTE FUNCTION pricing_audit();
CREATE TRIGGER holiday_calendars_audit AFTER INSERT OR UPDATE OR DELETE ON holiday_calendars
    FOR EACH ROW EXECUTE FUNCTION pricing_audit();
CREATE TRIGGER holiday_dates_audit AFTER INSERT OR UPDATE OR DELETE ON holiday_dates
    FOR EACH ROW EXECUTE FUNCTION pricing_audit();
CREATE TRIGGER price_providers_notify AFTER INSERT OR UPDATE OR DELETE ON price_providers
    FOR EACH STATEMENT EXECUTE FUNCTION pricing_notify();
CREATE TRIGGER price_cards_notify AFTER INSERT OR UPDATE OR DELETE ON price_cards
    FOR EACH STATEMENT EXECUTE FUNCTION pricing_notify();
CREATE TRIGGER discount_windows_notify AFTER INSERT OR UPDATE OR DELETE ON discount_windows
    FOR EACH STATEMENT EXECUTE FUNCTION pricing_notify();
CREATE TRIGGER holiday_calendars_notify AFTER INSERT OR UPDATE OR DELETE ON holiday_calendars
    FOR EACH STATEMENT EXECUTE FUNCTION pricing_notify();
CREATE TRIGGER holiday_dates_notify AFTER INSERT OR UPDATE OR DELETE ON holiday_dates
    FOR EACH STATEMENT EXECUTE FUNCTION pricing_notify();
