/* ctl_budget: the "budget" and "limit" command groups of tollgatectl. */
#ifndef CTL_BUDGET_H
#define CTL_BUDGET_H

#include "ctl.h"

int ctl_budget_main(ctl_ctx_t *ctx, int argc, char **argv);
int ctl_limit_main(ctl_ctx_t *ctx, int argc, char **argv);

#endif
