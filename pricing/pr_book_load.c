/* pr_book_load: fills a book's zones from the system tz database. Kept apart
 * from the pure book code: this is the only book function that reads files. */
#include "pr_book_internal.h"

#include <stdio.h>

int pr_book_load_zones(pr_book_t *b, const char *tzdir, char *err, size_t errlen)
{
    const char *name;
    while ((name = pr_book_zone_missing(b)) != NULL) {
        pr_tz_t *tz = NULL;
        if (pr_tz_load(name, tzdir, &tz, err, errlen) != 0)
            return -1;
        if (pr_book_add_zone(b, tz, err, errlen) != 0)
            return -1;
    }
    return 0;
}
