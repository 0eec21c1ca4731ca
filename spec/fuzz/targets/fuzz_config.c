/* fuzz_config.c: libFuzzer target for the whole config loader: the input
 * is a rules file handed to engine_new (yaml.c -> Lua node tree ->
 * engine.lua validation and compilation of every rule and template), as
 * the adapter does at start-up and on reload. A config that loads is
 * asked for its series queries (each kind). An invalid one must say why.
 * Uses: engine.h (LuaJIT through lx). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_verbosity(0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"custom", "external", "resource"};
    static char err[16384];
    struct engine *e;

    err[0] = '\0';
    e = engine_new((const char *)data, size, "fuzz.yaml", NULL, NULL, false,
                   err, sizeof err);
    if (!e) {
        if (!err[0])
            abort();
        return 0;
    }
    for (size_t k = 0; k < 3; k++) {
        char **q = NULL;
        size_t n = 0;
        (void)engine_has(e, kinds[k]);
        if (engine_series_queries(e, kinds[k], &q, &n, err, sizeof err) == 0) {
            for (size_t i = 0; i < n; i++)
                if (!q[i])
                    abort();
            engine_strv_free(q, n);
        }
    }
    engine_free(e);
    return 0;
}
