-- 0013: the caches of issue 9 (docs/cache.md) on each usage row.
--  cache_hit_predicted_tokens: how many prompt tokens the gateway's prefix
--    index expected the serving provider to bill as cache hits, written next
--    to what the provider then reported (cache_hit_tokens). NULL when no
--    prediction was made (prefix index off, no tokenizer for the model,
--    Redis unavailable, or rows written before this column).
--  response_cache_hit: the answer came from the gateway's response cache,
--    not from a provider (provider is then the one that produced the stored
--    answer, and the charge follows the configured response-cache rule).
ALTER TABLE usage_events
    ADD COLUMN cache_hit_predicted_tokens bigint,
    ADD COLUMN response_cache_hit boolean NOT NULL DEFAULT false;
