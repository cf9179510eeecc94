-- 0010: why each request went where it went. The gateway's router (issue 7,
-- docs/router.md) writes a compact JSON explanation of its decision: policy,
-- chosen provider, runner-up, why, and per candidate its expected cost and
-- latency or why it was dropped. NULL on rows written before this column or
-- when no decision was made (e.g. a request refused before routing).
ALTER TABLE usage_events ADD COLUMN route_explain jsonb;
