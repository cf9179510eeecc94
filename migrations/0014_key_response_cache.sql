-- 0014: the response cache's opt-in per API key (docs/response-cache.md).
--  response_cache: answers to this key's deterministic requests may be served
--    from (and stored in) the gateway's response cache, when the deployment
--    has response_cache = on. Off by default; a request can still opt in or
--    out with the x-tollgate-cache header. Set with
--    `tollgatectl key create ... --response-cache on` or `tollgatectl key cache`.
ALTER TABLE api_keys
    ADD COLUMN response_cache boolean NOT NULL DEFAULT false;
