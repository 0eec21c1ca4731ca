/* fuzz_selector.c: libFuzzer target for the label-selector parser
 * (selector.c). Oracle: a selector that parses prints a canonical string
 * that parses again to the same string (labels.Selector.String round
 * trip), and matching it against a fixed label set terminates.
 * Uses: selector.h, buf.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
lookup(void *ctx, const char *key)
{
    (void)ctx;
    if (strcmp(key, "app") == 0)
        return "web";
    if (strcmp(key, "tier") == 0)
        return "3";
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct selector *s = NULL, *s2 = NULL;
    struct buf a, b;
    char err[512];

    buf_init(&a, 1 << 20);
    buf_init(&b, 1 << 20);
    if (!(s = selector_parse((const char *)data, size, err, sizeof err))) {
        if (!err[0])
            abort();
        goto done;
    }
    (void)selector_matches(s, lookup, NULL);
    for (size_t i = 0; i < s->nreqs; i++)
        if (!selector_op_name(s->reqs[i].op))
            abort();
    if (selector_string(s, &a) != 0)
        goto done;
    if (!(s2 = selector_parse(a.data ? a.data : "", a.len, err, sizeof err)))
        abort();    /* the canonical form must parse */
    if (selector_string(s2, &b) != 0)
        abort();
    if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
        abort();    /* and be a fixed point */
done:
    selector_free(s);
    selector_free(s2);
    buf_free(&a);
    buf_free(&b);
    return 0;
}
