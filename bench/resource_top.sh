#!/usr/bin/env bash
# bench/resource_top.sh: the `kubectl top pods -A` request,
#   GET /apis/metrics.k8s.io/v1beta1/pods
# for NS namespaces x PER pods (default 50 x 100 = 5,000 pods), with
# rules/resource-metrics.yaml, nginx as an instant fake Prometheus (a static
# CPU or memory vector per query, bench/nginx-resource.conf.in) and the spec
# fake Kubernetes API holding the pods (the adapter's watch-fed pod cache is
# warmed by one request first). Each request renders and sends one CPU and
# one memory query per namespace (100 queries, 16 at a time on the worker
# thread's HTTP client: prom_query_many) and writes 5,000 PodMetrics.
# Prints wrk's requests/s and p50/p90/p99 latency for each wrk setting, the
# adapter's CPU time per request, and the Kubernetes requests made during
# the measured runs (must be 0).
# Usage: bench/resource_top.sh [NS [PER]]
# Env: WRK_SETTINGS ("THREADS:CONNECTIONS ...", default "1:1 2:4"),
#      WRK_DURATION (default 10s), ADAPTER_ARGS (extra adapter flags).
# Uses: bench/lib.sh, bench/gen_resource.lua, wrk, nginx. Bounded: every
# wait has a limit; everything started is stopped on exit.
source "$(dirname "$0")/lib.sh"

NS=${1:-50}
PER=${2:-100}
SETTINGS=${WRK_SETTINGS:-1:1 2:4}
DURATION=${WRK_DURATION:-10s}
command -v wrk >/dev/null || die "wrk is not installed (scripts/deps.sh bench)"

ensure_adapter
data=$BENCH_DIR/resource
mkdir -p "$data/tmp"
chmod 755 "$data"
(cd "$ROOT" && luajit bench/gen_resource.lua "$data" "$NS" "$PER")
chmod 644 "$data"/*.json

NGINX_PORT=$(free_port)
sed -e "s|@DIR@|$data|g" -e "s|@PORT@|$NGINX_PORT|g" "$BENCH_SRC/nginx-resource.conf.in" >"$data/nginx.conf"
nginx -e "$data/nginx-error.log" -p "$data" -c "$data/nginx.conf" &
BENCH_PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/api/v1/query?query=cpu" 10 ||
    die "nginx did not start: $(tail -5 "$data/nginx-error.log")"

start_kube "$data/kube-state.json"
machine_info
# Delegated authn/authz against the fake API; /apis/* is always allowed so
# no SubjectAccessReview is made per request (the figures measure the
# metrics path only).
# shellcheck disable=SC2086
start_adapter "$ROOT/rules/resource-metrics.yaml" \
    --authentication-kubeconfig="$KUBECONFIG_FILE" --authorization-kubeconfig="$KUBECONFIG_FILE" --authentication-tolerate-lookup-failure=true \
    --authorization-always-allow-paths='/healthz,/readyz,/livez,/apis/*' ${ADAPTER_ARGS:-}
wait_ready 60
url="https://127.0.0.1:$ADAPTER_PORT/apis/metrics.k8s.io/v1beta1/pods"

# Warm the pod cache and check the answer: one PodMetrics per pod.
body=$BENCH_DIR/answer.json
code=$(curl -sk -o "$body" -w '%{http_code}' --max-time 30 "$url")
[ "$code" = 200 ] || die "warm-up answered $code: $(head -c 300 "$body")"
items=$(luajit -e 'local d = require("cjson").decode(io.read("*a")); print(#d.items)' <"$body")
echo "pods -A: $items items ($NS namespaces x $PER pods), $(wc -c <"$body") bytes per answer"
[ "$items" = $((NS * PER)) ] || die "expected $((NS * PER)) items"

# Requests for pods or nodes (the objects this API reads) the fake API has
# recorded; the delegated-auth ConfigMap lookups are not counted.
# kube_requests [FROM]: the count; with FROM, the requests after the
# first FROM are listed on stderr (what the cache asked, and why).
kube_requests() {
    curl -s "http://127.0.0.1:$KUBE_PORT/_fake/requests" | FROM=${1:-} luajit -e '
        local d = require("cjson").decode(io.read("*a")); d = d.requests or d
        local n, from = 0, tonumber(os.getenv("FROM") or "")
        for _, r in ipairs(d) do
            local p = r.path or ""
            if p:find("/pods", 1, true) or p:find("/nodes", 1, true) then
                n = n + 1
                if from and n > from then
                    io.stderr:write("  after warm-up: ", r.method or "GET", " ", p,
                        r.query and ("?" .. tostring(r.query)) or "", "\n")
                end
            end
        end
        print(n)'
}
# The warm-up LISTed the pods; the cache's WATCH follows it. Wait for the
# watch, so that what is counted below is only what requests cause.
for _ in $(seq 50); do
    curl -s "http://127.0.0.1:$KUBE_PORT/_fake/watches" | grep -q pods && break
    sleep 0.1
done
k0=$(kube_requests)
for s in $SETTINGS; do
    t=${s%%:*} c=${s##*:}
    out=$BENCH_DIR/wrk.out
    c0=$(cpu_ticks "$ADAPTER_PID")
    timeout 120 wrk -t "$t" -c "$c" -d "$DURATION" --timeout 10s --latency "$url" >"$out" 2>&1 ||
        die "wrk failed: $(cat "$out")"
    c1=$(cpu_ticks "$ADAPTER_PID")
    wrk_row "$t" "$c" $((c1 - c0)) "$out"
done
k1=$(kube_requests "$k0")
echo "Kubernetes API requests for pods/nodes during the measured runs: $((k1 - k0))"
echo "adapter RSS after the runs: $(mb "$(proc_kb "$ADAPTER_PID" VmRSS)") MB (peak $(mb "$(proc_kb "$ADAPTER_PID" VmHWM)") MB)"
