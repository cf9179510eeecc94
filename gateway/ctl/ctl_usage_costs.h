/* ctl_usage_costs: the gateway's own costs (table gateway_costs, migration
 * 0018) in "tollgatectl usage": the gateway-costs listing and the checks
 * "usage verify" runs on them. */
#ifndef CTL_USAGE_COSTS_H
#define CTL_USAGE_COSTS_H

#include "ctl.h"

#include <stdio.h>

/* "usage gateway-costs [--from TIME] [--to TIME] [--format table|csv]":
 * argv[0] is the first option. Returns an exit status. */
int ctl_usage_gateway_costs(ctl_ctx_t *ctx, int argc, char **argv);

/* Inside verify's snapshot, with params = {from_us, to_us} (text): prints
 * the gateway cost rows of the period (on cancelled_at) and the priced ones
 * whose charge differs from prompt_tokens x the cache-miss price of their
 * card or window (view gateway_costs_charge_recomputed), with up to 10
 * examples. A database without the table prints so and counts nothing.
 * Returns the differences found, or -1 (printed) when a query failed. */
int64_t ctl_gateway_costs_verify(PGconn *conn, const char *const *params);

/* How many of the (ids[i], attempts[i]), i < n, have a row in
 * gateway_costs; -1 (printed) on error or when the table is missing. */
int64_t ctl_gateway_costs_in_ledger(PGconn *conn, char **ids, const int *attempts, size_t n);

/* One CSV field (RFC 4180 quoting when needed); ctl_usage.c. */
void ctl_csv_field(FILE *out, const char *v);

#endif
