#!/usr/bin/env bash
# Integration test on the real PostgreSQL from scripts/services: migrations
# 0001 and 0002 apply cleanly to a fresh database (as the tollgate role), the
# DeepSeek seed loads (twice: idempotent), the C loader builds a price book from
# the rows and prices the brief's examples (test_pricing_pgload), and the
# schema refuses bad rows, keeps charged history immutable and audits changes.
# Usage: test_pg.sh LOADER_BINARY SOURCE_ROOT
set -uo pipefail
loader=$1 root=$2
if [ -z "${TG_PG_ADMIN_CONNINFO:-}" ] || [ -z "${TG_PG_CONNINFO:-}" ]; then
    echo "SKIP: TG_PG_ADMIN_CONNINFO/TG_PG_CONNINFO not set: no PostgreSQL (run scripts/test)"
    exit 77
fi
db="tg_pricing_$$_$RANDOM"
admin=$TG_PG_ADMIN_CONNINFO
user=$(sed "s/dbname=[^ ]*/dbname=$db/" <<<"$TG_PG_CONNINFO")
psql "$admin" -qc "CREATE DATABASE $db OWNER tollgate" || { echo "FAIL: create database"; exit 1; }
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() { psql "$user" -X -v ON_ERROR_STOP=1 -qAt -c "$1" 2>&1; }
expect_ok() { local out; out=$(run "$1") && echo "ok: $2" || fail "$2: $out"; }
expect_eq() {
    local got; got=$(run "$1")
    [ "$got" = "$2" ] && echo "ok: $3 = $2" || fail "$3: got '$got', want '$2'"
}
expect_err() {
    local out
    if out=$(run "$1"); then fail "accepted: $1"
    elif grep -q -- "$2" <<<"$out"; then echo "refused as expected: $(grep ERROR <<<"$out" | head -1)"
    else fail "wrong error for: $1: $out"; fi
}
apply() {
    local out
    out=$(psql "$user" -X -v ON_ERROR_STOP=1 -q -1 -f "$1" 2>&1) && echo "ok: applied $1" \
        || fail "applying $1: $out"
}

apply "$root/migrations/0001_teams_keys_usage.sql"
apply "$root/migrations/0002_prices.sql"
apply "$root/etc/seed/deepseek-prices.sql"
apply "$root/etc/seed/deepseek-prices.sql"   # re-run: nothing duplicated
expect_eq "SELECT count(*) FROM price_cards" 12 "cards after seeding twice"
expect_eq "SELECT count(*) FROM discount_windows" 6 "windows after seeding twice"
expect_eq "SELECT count(*) FROM audit_log WHERE actor = 'seed'" 20 "audit rows by the seed"
expect_eq "SELECT count(*) FROM audit_log WHERE actor = 'seed' AND action = 'insert' AND after IS NOT NULL AND before IS NULL" 20 "audit rows carry after"
expect_eq "SELECT w.cache_hit_price||'/'||w.cache_miss_price||'/'||w.output_price||'/'||coalesce(w.reasoning_price::text,'-')
           FROM discount_windows w JOIN price_cards c ON c.id = w.card_id
           WHERE c.provider = 'deepseek' AND c.model = 'deepseek-chat' AND w.kind = 'daily'" \
    "35000/135000/550000/-" "USD chat off-peak prices from 50%"
expect_eq "SELECT w.cache_hit_price||'/'||w.cache_miss_price||'/'||w.output_price
           FROM discount_windows w JOIN price_cards c ON c.id = w.card_id
           WHERE c.provider = 'deepseek-cny' AND c.model = 'deepseek-reasoner'" \
    "250000/1000000/4000000" "CNY reasoner off-peak prices from 75%"
expect_eq "SELECT count(*) FROM price_card_history WHERE provider = 'deepseek' AND effective_until IS NULL" 2 "open cards (V3.2)"

if out=$("$loader" "$user" 2>&1); then grep -E "usage rows|checks" <<<"$out"; else fail "loader: $out"; fi

# bad rows, each refused with a message
card="INSERT INTO price_cards (provider, model, currency, cache_hit_price, cache_miss_price, output_price, effective_from, created_by) VALUES"
expect_err "$card ('t','m','USD',-1,2,3,'2025-01-01Z','t')" "price_cards_cache_hit_price_check"
expect_err "$card ('t','m','USD',1,1000000000001,3,'2025-01-01Z','t')" "price_cards_cache_miss_price_check"
expect_err "$card ('t','m','XYZ',1,2,3,'2025-01-01Z','t')" "price_cards_currency_fkey"
expect_err "$card ('t','m','USD',1,2,3,'2025-01-01Z','')" "price_cards_created_by_check"
expect_ok "$card ('t','m','USD',3,5,7,'2025-01-01Z','t')" "test card"
expect_err "$card ('t','m','CNY',1,2,3,'2025-01-01Z','t')" "price_cards_provider_model_effective_from_key"
win="INSERT INTO discount_windows (card_id, kind, precedence, valid_from, valid_until, zone, start_second, end_second, percent_off_bp, cache_hit_price, cache_miss_price, output_price, created_by)
     SELECT id,"
tc="FROM price_cards WHERE provider = 't'"
expect_err "$win 'once', 0, '2025-02-01Z', '2025-01-01Z', NULL, NULL, NULL, NULL, 1, 1, 1, 't' $tc" "window_ends_after_start"
expect_err "$win 'daily', 0, '2025-01-01Z', NULL, 'Mars/Base', 0, 3600, NULL, 1, 1, 1, 't' $tc" 'unknown time zone "Mars/Base"'
expect_err "$win 'daily', 0, '2025-01-01Z', NULL, NULL, 0, 3600, NULL, 1, 1, 1, 't' $tc" "daily_fields"
expect_err "$win 'daily', 0, '2025-01-01Z', NULL, 'UTC', 3600, 3600, NULL, 1, 1, 1, 't' $tc" "daily_fields"
expect_err "$win 'holiday', 0, '2025-01-01Z', NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 't' $tc" "holiday_needs_calendar"
expect_err "$win 'daily', 0, '2025-01-01Z', NULL, 'UTC', 0, 3600, 5000, 1, 1, 1, 't' $tc" "give one"
expect_err "$win 'daily', 0, '2025-01-01Z', NULL, 'UTC', 0, 3600, 10001, NULL, NULL, NULL, 't' $tc" "percent_off_bp_check"
expect_err "$win 'once', 0, '2025-01-01Z', NULL, NULL, NULL, NULL, NULL, -1, 1, 1, 't' $tc" "discount_windows_cache_hit_price_check"
expect_err "$win 'weekly', 0, '2025-01-01Z', NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 't' $tc" "discount_windows_kind_check"
expect_err "INSERT INTO holiday_calendars (name, zone, created_by) VALUES ('cn', 'Asia/Beijing', 't')" 'unknown time zone "Asia/Beijing"'
expect_ok "INSERT INTO holiday_calendars (name, zone, created_by) VALUES ('cn', 'Asia/Shanghai', 't')" "calendar"
expect_err "INSERT INTO holiday_dates (calendar_id, day, created_by) SELECT id, '2025-02-29', 't' FROM holiday_calendars" "out of range"
expect_ok "INSERT INTO holiday_dates (calendar_id, day, name, created_by) SELECT id, '2025-10-01', 'National Day', 't' FROM holiday_calendars" "holiday date"
excl="INSERT INTO discount_windows (card_id, kind, valid_from, zone, start_second, end_second, calendar_id, percent_off_bp, created_by)
      SELECT c.id, 'daily', '2025-01-01Z', %s, 3600, 7200, h.id, 1000, 't' FROM price_cards c, holiday_calendars h WHERE c.provider = 't'"
expect_err "$(printf "$excl" "'UTC'")" "excludes calendar"
expect_ok "$(printf "$excl" "'Asia/Shanghai'")" "daily window excluding a calendar of its zone"
expect_ok "DELETE FROM discount_windows WHERE calendar_id IS NOT NULL" "remove it again (card not yet charged)"
expect_err "INSERT INTO price_providers (provider, tier_instant, created_by) VALUES ('t', 'midpoint', 't')" "price_providers_tier_instant_check"
# percent converted on insert, half to even: 3 -> 1.5 -> 2, 5 -> 2.5 -> 2, 7 -> 3.5 -> 4
expect_ok "$win 'daily', 0, '2025-01-01Z', NULL, 'UTC', 79200, 7200, 5000, NULL, NULL, NULL, 't' $tc" "percent window"
expect_eq "SELECT cache_hit_price||'/'||cache_miss_price||'/'||output_price FROM discount_windows WHERE created_by = 't'" "2/2/4" "half-even percent prices"

# immutability once a card has priced usage
expect_ok "INSERT INTO teams (name) VALUES ('acme');
           INSERT INTO api_keys (team_id, key_sha256, display_prefix) SELECT id, sha256('k'), 'tg-k' FROM teams WHERE name = 'acme';
           INSERT INTO usage_events (request_id, team_id, key_id, model_requested, provider, upstream_model, endpoint, streamed,
               http_status, received_at, completed_at, usage_complete, price_card_id, priced_at_instant, charge_currency, charge_pico)
           SELECT 'r1', t.id, k.id, 'm', 't', 'm', 'chat.completions', false, 200, '2025-03-01 00:00Z', '2025-03-01 00:00:01Z', true,
                  c.id, '2025-03-01 00:00:01Z', 'USD', 15000000
           FROM teams t JOIN api_keys k ON k.team_id = t.id, price_cards c WHERE t.name = 'acme' AND c.provider = 't'" "usage row priced by the test card"
expect_err "UPDATE price_cards SET output_price = 8 WHERE provider = 't'" "never edited in place"
expect_err "DELETE FROM price_cards WHERE provider = 't'" "never edited in place"
expect_err "$card ('t','m','USD',1,2,3,'2025-03-01Z','t')" "would re-price usage already charged"
expect_ok "$card ('t','m','USD',1,2,3,'2025-03-01 00:00:02Z','t')" "new card after the charged usage"
tw="FROM discount_windows WHERE created_by = 't'"
expect_err "UPDATE discount_windows SET precedence = 5 WHERE created_by = 't'" "only valid_until may change"
expect_err "UPDATE discount_windows SET valid_until = '2025-06-01Z' WHERE created_by = 't'" "only valid_until may change"
expect_err "DELETE FROM discount_windows WHERE created_by = 't'" "instead of deleting"
expect_ok "SET LOCAL tollgate.actor = 'alice'; UPDATE discount_windows SET valid_until = now() + interval '1 day' WHERE created_by = 't'" "window ended in the future"
expect_eq "SELECT count(*) FROM audit_log WHERE actor = 'alice' AND action = 'update' AND object LIKE 'discount_windows/%'
           AND before->>'valid_until' IS NULL AND after->>'valid_until' IS NOT NULL" 1 "audit of the update by alice"
expect_err "$win 'once', 1, '2025-02-01Z', '2025-02-02Z', NULL, NULL, NULL, NULL, 1, 1, 1, 't' FROM price_cards WHERE provider = 't' AND effective_from = '2025-01-01Z'" "would re-price usage"
# a card with no usage may still be corrected, and that is audited
expect_ok "SET LOCAL tollgate.actor = 'bob'; UPDATE price_cards SET output_price = 9 WHERE provider = 't' AND effective_from > '2025-03-01Z'" "unused card corrected"
expect_eq "SELECT (before->>'output_price')||'->'||(after->>'output_price') FROM audit_log WHERE actor = 'bob'" "3->9" "audit before/after"
# running gateways are told to reload
notes=$(printf "LISTEN tollgate_prices;\nINSERT INTO price_providers (provider, created_by) VALUES ('n', 't');\nSELECT 1;\n" \
        | psql "$user" -X -q 2>&1)
grep -q 'notification "tollgate_prices" with payload "price_providers"' <<<"$notes" \
    && echo "ok: NOTIFY tollgate_prices" || fail "no NOTIFY: $notes"

echo "test_pg: $fails failed"
[ "$fails" -eq 0 ]
