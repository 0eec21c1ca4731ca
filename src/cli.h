/* cli.h: the operator subcommands of promlua-adapter.
 *  - check-config: validates --config and every --lua-script without
 *    Prometheus or Kubernetes; prints each error and warning as
 *    "FILE:LINE: key.path: message" (warnings: "FILE:LINE: key.path:
 *    warning: message") on stdout; exit 0 valid, 1 invalid, 2 bad usage.
 *  - explain: for one API path as the HPA requests it, connects to
 *    Prometheus and Kubernetes with the usual flags and prints the rules
 *    and series that produce the metric (or the nearest candidates and why
 *    each was rejected), the objects selected, the rendered PromQL, the raw
 *    samples and the JSON the adapter would answer (produced by the real
 *    handler, served on a private loopback listener).
 * Uses: flags, engine, lx/yaml (the validation's warnings), reload (file
 * loading), prom, kube, kcache, cache, relist, api, server, http_client.
 * Never: writes anything but stdout/stderr; never logs a secret (output
 * goes through log_scrub). */
#ifndef ADAPTER_CLI_H
#define ADAPTER_CLI_H
#include <stddef.h>

struct options;
struct kube_config;
struct prom_client;

/* main.c's Prometheus client constructor (flags -> client), handed in so
 * explain uses exactly the start-up code path. */
typedef struct prom_client *(*cli_make_prom)(const struct options *o,
                                             struct kube_config *auth,
                                             char *err, size_t errlen);

/* argv[0] is the subcommand name. Return the process exit code. */
int cli_check_config(int argc, char **argv);
int cli_explain(int argc, char **argv, cli_make_prom make_prom);
#endif
