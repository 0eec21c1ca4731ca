#!/usr/bin/env bash
# demo.sh: the README's `make demo` (which installs the packages and builds
# first; this script does neither, it only checks that the tools and the
# binary are there, so spec/integration/demo_spec.lua runs it as is).
# Starts on 127.0.0.1 only:
#   - the demo workload (scripts/demo/exporter.lua): request counters and
#     queue gauges with namespace/pod labels, CPU and memory series;
#   - a real Prometheus (Debian's /usr/bin/prometheus) scraping it every 1 s;
#   - the stand-in Kubernetes API (spec/fixtures/fake_kube.lua) with the
#     demo's namespace, pods, service and node; it also answers the
#     adapter's TokenReviews and SubjectAccessReviews (allowing all);
#   - the adapter (build/promlua-adapter) with rules/default.yaml plus the
#     external rule of scripts/demo/external.yaml;
#   - nginx as the aggregator: /apis/*metrics.k8s.io* to the adapter,
#     everything else to the fake API;
# then prints, with kubectl against that front, the discovered custom
# metrics, a custom, an external and a resource metric query and
# `kubectl top pod`/`top node`, and keeps everything running until Ctrl-C.
#
# Environment: DEMO_ONESHOT=1 exits after printing; DEMO_KEEP=1 keeps the
# work directory (logs, configs); ADAPTER_BIN picks the binary;
# ADAPTER_EXTRA_ARGS adds adapter flags (whitespace-separated).
# Uses: bash, luajit + lua-socket + lua-cjson, prometheus, nginx, curl,
# kubectl (1.20, Debian's kubernetes-client, or newer). Must never: listen
# beyond loopback, wait without a bound, or leave a process behind (the
# EXIT trap stops each one it started, by pid).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ADAPTER_BIN=${ADAPTER_BIN:-$ROOT/build/promlua-adapter}
DEMO_DIR=$(mktemp -d /tmp/promlua-demo.XXXXXX)
# nginx workers may run as another user (nobody, when started by root)
chmod 755 "$DEMO_DIR"
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        echo "demo: logs and configs kept in $DEMO_DIR" >&2
    else
        rm -rf "$DEMO_DIR"
    fi
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping" >&2; exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
    printf 'demo: %s\n' "$*" >&2
    for f in "$DEMO_DIR"/*.err; do
        [ -s "$f" ] && { printf -- '--- %s (last lines)\n' "$(basename "$f")" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

for c in luajit prometheus nginx kubectl curl; do
    command -v "$c" >/dev/null || die "$c is missing: run scripts/deps.sh demo"
done
[ -x "$ADAPTER_BIN" ] || die "no adapter binary at $ADAPTER_BIN: run make build"

free_port() {
    luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
               local _, p = s:getsockname(); s:close(); print(p)'
}

# start NAME CMD...: runs CMD in the background, output in DEMO_DIR/NAME.*
start() {
    local name=$1; shift
    "$@" >"$DEMO_DIR/$name.out" 2>"$DEMO_DIR/$name.err" &
    PIDS+=($!)
}

# wait_for WHAT SECONDS CMD...: polls CMD every 0.2 s, at most SECONDS.
wait_for() {
    local what=$1 secs=$2; shift 2
    local i
    for i in $(seq $((secs * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "timed out after ${secs}s waiting for $what"
}

# The "PORT n" line a fake or the exporter prints once listening.
port_of() {
    local name=$1 i p
    for i in $(seq 50); do
        p=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$DEMO_DIR/$name.out" 2>/dev/null | head -n1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
    done
    die "$name did not start"
}

say "starting the demo stack in $DEMO_DIR"
start exporter luajit scripts/demo/exporter.lua --port 0
EXPORTER_PORT=$(port_of exporter)
PROM_PORT=$(free_port)
ADAPTER_PORT=$(free_port)
FRONT_PORT=$(free_port)
# the fake's state and discovery are written before it starts; its port is
# only known after, so the files naming it are written again below
luajit scripts/demo/stack.lua "$DEMO_DIR" exporter="$EXPORTER_PORT" prometheus="$PROM_PORT" \
    kube=1 adapter="$ADAPTER_PORT" front="$FRONT_PORT"
start kube luajit spec/fixtures/fake_kube.lua --port 0 \
    --discovery "$DEMO_DIR/discovery.json" --state-file "$DEMO_DIR/objects.json"
KUBE_PORT=$(port_of kube)
luajit scripts/demo/stack.lua "$DEMO_DIR" exporter="$EXPORTER_PORT" prometheus="$PROM_PORT" \
    kube="$KUBE_PORT" adapter="$ADAPTER_PORT" front="$FRONT_PORT"
echo "workload exporter  http://127.0.0.1:$EXPORTER_PORT/metrics"
echo "Kubernetes API     http://127.0.0.1:$KUBE_PORT (fake)"

start prometheus prometheus --config.file="$DEMO_DIR/prometheus.yml" \
    --storage.tsdb.path="$DEMO_DIR/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn
PROM=http://127.0.0.1:$PROM_PORT
wait_for "Prometheus to be ready" 30 curl -sf "$PROM/-/ready"
echo "Prometheus         $PROM (scraping every 1s)"

# irate() and rate() need two samples of each series; three to be safe.
enough_samples() {
    curl -sf "$PROM/api/v1/query" --data-urlencode \
        'query=min(count_over_time(container_cpu_usage_seconds_total[1m])) >= 3' |
        grep -q '"result":\[{'
}
wait_for "three scrapes of the workload" 30 enough_samples

# shellcheck disable=SC2206
EXTRA=(${ADAPTER_EXTRA_ARGS:-})
start adapter "$ADAPTER_BIN" --config="$DEMO_DIR/config.yaml" \
    --prometheus-url="$PROM/" --lister-kubeconfig="$DEMO_DIR/kube.kubeconfig" \
    --authentication-kubeconfig="$DEMO_DIR/kube.kubeconfig" \
    --authorization-kubeconfig="$DEMO_DIR/kube.kubeconfig" \
    --authentication-tolerate-lookup-failure=true \
    --bind-address=127.0.0.1 --secure-port="$ADAPTER_PORT" --cert-dir="$DEMO_DIR/certs" \
    --metrics-relist-interval=15s --v=1 "${EXTRA[@]}"
wait_for "the adapter's /readyz" 30 curl -skf "https://127.0.0.1:$ADAPTER_PORT/readyz"
echo "adapter            https://127.0.0.1:$ADAPTER_PORT (log: $DEMO_DIR/adapter.err)"

start front nginx -p "$DEMO_DIR" -c "$DEMO_DIR/nginx.conf" -e "$DEMO_DIR/nginx-error.log"
wait_for "the front" 15 curl -sf "http://127.0.0.1:$FRONT_PORT/api"
echo "front (aggregator) http://127.0.0.1:$FRONT_PORT  kubeconfig: $DEMO_DIR/front.kubeconfig"

k() { kubectl --kubeconfig="$DEMO_DIR/front.kubeconfig" --cache-dir="$DEMO_DIR/kube-cache" "$@"; }
show() { luajit scripts/demo/show.lua "$@"; }
raw() { # prints the command, then the answer through show.lua MODE
    local mode=$1 path=$2
    printf '$ kubectl get --raw %q\n' "$path"
    k get --raw "$path" >"$DEMO_DIR/answer.json" 2>"$DEMO_DIR/kubectl.err" ||
        { cat "$DEMO_DIR/kubectl.err"; return 1; }
    show "$mode" <"$DEMO_DIR/answer.json"
}
has_metric() {
    k get --raw /apis/custom.metrics.k8s.io/v1beta2 | grep -q '"pods/http_requests"'
}
wait_for "the adapter's first relist" 30 has_metric

status=0
say "discovered custom metrics (custom.metrics.k8s.io/v1beta2)"
raw list /apis/custom.metrics.k8s.io/v1beta2 || status=1

say "a custom metric: requests per second of each web pod"
echo "(rule 5 of rules/default.yaml: sum(rate(http_requests_total{...}[5m])) by (pod);"
echo " until Prometheus holds 5 minutes of samples, rate() over [5m] reads low)"
raw values '/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/http_requests?labelSelector=app%3Dweb' || status=1

say "an external metric: messages ready in the orders queue"
raw values '/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_messages_ready?labelSelector=queue%3Dorders' || status=1

say "a resource metric (metrics.k8s.io): pod web-0"
raw values /apis/metrics.k8s.io/v1beta1/namespaces/demo/pods/web-0 || status=1

say "kubectl top pod"
echo '$ kubectl top pod'
k top pod || status=1
say "kubectl top node"
echo '$ kubectl top node'
k top node || status=1

if [ "${DEMO_ONESHOT:-0}" = 1 ]; then
    [ "$status" = 0 ] || die "some demo steps failed"
    exit 0
fi
say "running; try for example:"
echo "  kubectl --kubeconfig=$DEMO_DIR/front.kubeconfig get --raw /apis/custom.metrics.k8s.io/v1beta1"
echo "  kubectl --kubeconfig=$DEMO_DIR/front.kubeconfig top pod"
echo "  open $PROM/graph (Prometheus)"
echo "Ctrl-C stops everything."
# Wakes every second so the INT trap runs promptly; ends if a process died.
# (Ctrl-C reaches the whole process group: a child may die of it before
# this shell runs its trap, hence the second look before complaining.)
while true; do
    for p in "${PIDS[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            sleep 1
            die "a demo process (pid $p) exited"
        fi
    done
    sleep 1
done
