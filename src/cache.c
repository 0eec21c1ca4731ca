/* cache.c: immutable, refcounted registry snapshots (see cache.h).
 * Uses libc and pthreads only. */
#include "cache.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* -- Strings ---------------------------------------------------------- */

static char *
dup(const char *s)
{
    return strdup(s ? s : "");
}

/* Arrays hold n elements with a capacity of max(8, next power of two), so
 * the capacity needs no field: grow when n is 0 or a power of two >= 8. */
static int
grow(void **v, size_t n, size_t sz)
{
    size_t cap;
    if (n == 0)
        cap = 8;
    else if (n >= 8 && (n & (n - 1)) == 0)
        cap = n * 2;
    else
        return 0;
    void *p = realloc(*v, cap * sz);
    if (!p)
        return -1;
    *v = p;
    return 0;
}

/* -- Lifecycle -------------------------------------------------------- */

int
cache_init(struct cache *c)
{
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return -1;
    c->next_generation = 1;
    c->cur = cache_snap_new();
    if (!c->cur) {
        pthread_mutex_destroy(&c->mu);
        return -1;
    }
    c->cur->refs = 1;
    return 0;
}

void
cache_destroy(struct cache *c)
{
    cache_snap_free(c->cur);
    c->cur = NULL;
    pthread_mutex_destroy(&c->mu);
}

struct cache_snap *
cache_snap_new(void)
{
    return calloc(1, sizeof(struct cache_snap));
}

static void
free_resource(struct cache_resource *r)
{
    free(r->group); free(r->version); free(r->resource);
    free(r->singular); free(r->kind);
}

static void
free_custom(struct cache_custom *e)
{
    free(e->metric); free(e->resource); free(e->group); free(e->series);
    free(e->resource_label); free(e->namespace_label);
    free(e->kind); free(e->version);
}

void
cache_snap_free(struct cache_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nresources; i++)
        free_resource(&s->resources[i]);
    for (size_t i = 0; i < s->ncustom; i++)
        free_custom(&s->custom[i]);
    for (size_t i = 0; i < s->nexternal; i++) {
        free(s->external[i].metric);
        free(s->external[i].series);
    }
    free(s->resources);
    free(s->custom);
    free(s->external);
    free(s);
}

struct cache_snap *
cache_acquire(struct cache *c)
{
    pthread_mutex_lock(&c->mu);
    struct cache_snap *s = c->cur;
    s->refs++;
    pthread_mutex_unlock(&c->mu);
    return s;
}

void
cache_snap_release(struct cache *c, struct cache_snap *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&c->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&c->mu);
    if (left == 0)
        cache_snap_free(s);
}

/* -- Building --------------------------------------------------------- */

int
cache_snap_add_resource(struct cache_snap *s, const struct cache_resource *r)
{
    if (grow((void **)&s->resources, s->nresources, sizeof *r) < 0)
        return -1;
    struct cache_resource *d = &s->resources[s->nresources];
    *d = (struct cache_resource){
        .group = dup(r->group), .version = dup(r->version),
        .resource = dup(r->resource), .singular = dup(r->singular),
        .kind = dup(r->kind), .namespaced = r->namespaced,
        .preferred = r->preferred,
    };
    if (!d->group || !d->version || !d->resource || !d->singular || !d->kind) {
        free_resource(d);
        return -1;
    }
    s->nresources++;
    return 0;
}

int
cache_snap_add_custom(struct cache_snap *s, const struct cache_custom *e)
{
    if (grow((void **)&s->custom, s->ncustom, sizeof *e) < 0)
        return -1;
    struct cache_custom *d = &s->custom[s->ncustom];
    *d = (struct cache_custom){
        .metric = dup(e->metric), .resource = dup(e->resource),
        .group = dup(e->group), .namespaced = e->namespaced,
        .series = dup(e->series), .rule = e->rule,
        .resource_label = dup(e->resource_label),
        .namespace_label = e->namespace_label ? strdup(e->namespace_label) : NULL,
        .kind = dup(e->kind), .version = dup(e->version),
    };
    if (!d->metric || !d->resource || !d->group || !d->series ||
        !d->resource_label || (e->namespace_label && !d->namespace_label) ||
        !d->kind || !d->version) {
        free_custom(d);
        return -1;
    }
    s->ncustom++;
    return 0;
}

int
cache_snap_add_external(struct cache_snap *s, const struct cache_external *e)
{
    if (grow((void **)&s->external, s->nexternal, sizeof *e) < 0)
        return -1;
    struct cache_external *d = &s->external[s->nexternal];
    d->metric = dup(e->metric);
    d->series = dup(e->series);
    d->rule = e->rule;
    if (!d->metric || !d->series) {
        free(d->metric);
        free(d->series);
        return -1;
    }
    s->nexternal++;
    return 0;
}

static int
custom_key_cmp(const char *res, const char *grp, bool ns, const char *metric,
               const struct cache_custom *b)
{
    int r = strcmp(res, b->resource);
    if (!r) r = strcmp(grp, b->group);
    if (!r) r = (int)ns - (int)b->namespaced;
    if (!r) r = strcmp(metric, b->metric);
    return r;
}

/* qsort is not stable: the insertion index (kept in a side array) breaks
 * ties so that the last writer of a key is the one kept. */
struct custom_ix { struct cache_custom e; size_t ix; };
struct external_ix { struct cache_external e; size_t ix; };

static int
cmp_custom_ix(const void *a, const void *b)
{
    const struct custom_ix *x = a, *y = b;
    int r = custom_key_cmp(x->e.resource, x->e.group, x->e.namespaced,
                           x->e.metric, &y->e);
    if (r)
        return r;
    return x->ix < y->ix ? -1 : x->ix > y->ix;
}

static int
cmp_external_ix(const void *a, const void *b)
{
    const struct external_ix *x = a, *y = b;
    int r = strcmp(x->e.metric, y->e.metric);
    if (r)
        return r;
    return x->ix < y->ix ? -1 : x->ix > y->ix;
}

/* Sorts entries and keeps the last-added entry of each key. Allocation
 * failure leaves the arrays unsorted but intact (lookups then degrade to
 * misses for some keys, never to a crash); it cannot happen for the small
 * side arrays in practice. */
static void
finish(struct cache_snap *s)
{
    if (s->ncustom) {
        struct custom_ix *t = malloc(s->ncustom * sizeof *t);
        if (t) {
            for (size_t i = 0; i < s->ncustom; i++)
                t[i] = (struct custom_ix){ s->custom[i], i };
            qsort(t, s->ncustom, sizeof *t, cmp_custom_ix);
            size_t n = 0;
            for (size_t i = 0; i < s->ncustom; i++) {
                if (i + 1 < s->ncustom &&
                    !custom_key_cmp(t[i].e.resource, t[i].e.group,
                                    t[i].e.namespaced, t[i].e.metric,
                                    &t[i + 1].e)) {
                    free_custom(&t[i].e);   /* overwritten by a later rule */
                    continue;
                }
                s->custom[n++] = t[i].e;
            }
            s->ncustom = n;
            free(t);
        }
    }
    if (s->nexternal) {
        struct external_ix *t = malloc(s->nexternal * sizeof *t);
        if (t) {
            for (size_t i = 0; i < s->nexternal; i++)
                t[i] = (struct external_ix){ s->external[i], i };
            qsort(t, s->nexternal, sizeof *t, cmp_external_ix);
            size_t n = 0;
            for (size_t i = 0; i < s->nexternal; i++) {
                if (i + 1 < s->nexternal &&
                    !strcmp(t[i].e.metric, t[i + 1].e.metric)) {
                    free(t[i].e.metric);
                    free(t[i].e.series);
                    continue;
                }
                s->external[n++] = t[i].e;
            }
            s->nexternal = n;
            free(t);
        }
    }
}

void
cache_publish(struct cache *c, struct cache_snap *s)
{
    finish(s);
    pthread_mutex_lock(&c->mu);
    s->generation = c->next_generation++;
    s->refs = 1;
    struct cache_snap *old = c->cur;
    c->cur = s;
    int left = --old->refs;
    pthread_mutex_unlock(&c->mu);
    if (left == 0)
        cache_snap_free(old);
}

/* -- Lookups ---------------------------------------------------------- */

const struct cache_custom *
cache_find_custom(const struct cache_snap *s, const char *resource,
                  const char *group, bool namespaced, const char *metric)
{
    size_t lo = 0, hi = s->ncustom;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = custom_key_cmp(resource, group, namespaced, metric,
                               &s->custom[mid]);
        if (r == 0)
            return &s->custom[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct cache_external *
cache_find_external(const struct cache_snap *s, const char *metric)
{
    size_t lo = 0, hi = s->nexternal;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(metric, s->external[mid].metric);
        if (r == 0)
            return &s->external[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static bool
group_matches(const char *want, const char *have, bool prefix)
{
    if (!*want)
        return true;
    if (!prefix)
        return strcmp(want, have) == 0;
    return strncmp(want, have, strlen(want)) == 0;
}

/* One pass over the discovery list for a given group-matching mode. The
 * list is in discovery order (core v1 first), so the first candidate of the
 * preferred version is the winner of RESTMapper's priority ordering:
 * core v1, then groups in discovery order. Candidates of one group in
 * several versions are the same group-resource. */
static const struct cache_resource *
normalize_pass(const struct cache_snap *s, const char *name, const char *group,
               bool prefix)
{
    const struct cache_resource *first = NULL, *first_pref = NULL;
    for (size_t i = 0; i < s->nresources; i++) {
        const struct cache_resource *r = &s->resources[i];
        if (strcmp(r->resource, name) && strcmp(r->singular, name))
            continue;
        if (!group_matches(group, r->group, prefix))
            continue;
        if (!first)
            first = r;
        if (r->preferred && !first_pref)
            first_pref = r;
        if (!*r->group && !strcmp(r->version, "v1"))
            return r;
    }
    if (first && first_pref && !strcmp(first_pref->group, first->group))
        return first_pref;
    return first;
}

const struct cache_resource *
cache_normalize(const struct cache_snap *s, const char *resource,
                const char *group)
{
    char name[256];
    size_t n = strlen(resource);
    if (n == 0 || n >= sizeof name)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        name[i] = (char)tolower((unsigned char)resource[i]);
    const struct cache_resource *r = normalize_pass(s, name, group, false);
    if (!r && *group)
        r = normalize_pass(s, name, group, true);
    /* Report the group's preferred version for the chosen group-resource. */
    if (r && !r->preferred) {
        for (size_t i = 0; i < s->nresources; i++) {
            const struct cache_resource *p = &s->resources[i];
            if (p->preferred && !strcmp(p->group, r->group) &&
                !strcmp(p->resource, r->resource))
                return p;
        }
    }
    return r;
}
