-- roles.sql: the database roles that need CREATEROLE, which the tollgate role
-- (the one `tollgatectl migrate` runs as) does not have. Run it as an
-- administrator after migrating, on each Tollgate database; it is idempotent:
--   psql "$TG_PG_ADMIN_CONNINFO dbname=tollgate" -v ON_ERROR_STOP=1 -f migrations/roles.sql
-- tollgate_finance: NOLOGIN; finance people log in as their own roles, made
-- members of it (GRANT tollgate_finance TO alice). It may read the finance
-- views and nothing else: no table (not usage_events, not api_keys), no
-- function of ours, no write anywhere (docs/finance.md).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tollgate_finance') THEN
        CREATE ROLE tollgate_finance NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO tollgate_finance', current_database());
    IF to_regclass('finance_usage') IS NULL THEN
        RAISE EXCEPTION 'run tollgatectl migrate first: the finance views (migration 0004) are missing';
    END IF;
    GRANT USAGE ON SCHEMA public TO tollgate_finance;
    GRANT SELECT ON finance_usage, finance_usage_daily, finance_spend_monthly,
        finance_spend_monthly_team, usage_charge_recomputed TO tollgate_finance;
    -- The gateway's own costs (migration 0018), on a database that has them.
    IF to_regclass('finance_gateway_costs') IS NOT NULL THEN
        GRANT SELECT ON finance_gateway_costs, finance_gateway_costs_daily,
            gateway_costs_charge_recomputed TO tollgate_finance;
    END IF;
END $$;
