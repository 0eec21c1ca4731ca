#!/usr/bin/env bash
# bench/query.sh: selector queries over the pods of one namespace,
#   GET /apis/custom.metrics.k8s.io/v1beta1/namespaces/bench/pods/%2A/bench_metric_001?labelSelector=...
# driven by wrk over HTTPS (keep-alive), against nginx as an instant fake
# Prometheus (a static 1,000-sample vector) and the spec fake Kubernetes API
# holding PODS pods (the adapter's watch-fed object cache is warmed by one
# request first, so the measured requests make no Kubernetes call).
# Prints wrk's requests/s and p50/p90/p99 latency for each wrk setting, and
# the adapter's CPU time per request (user + system, from /proc; unlike the
# rates this does not depend on what else the machine is running).
# Usage: bench/query.sh [PODS]   (default 1000)
# Env: WRK_SETTINGS ("THREADS:CONNECTIONS ...", default "1:1 1:4 2:8 2:16 2:32"),
#      WRK_DURATION (default 10s), SELECTORS (default "app=bench shard=s7":
#      every pod, and 1 pod in 100; nginx answers each with the vector a
#      real Prometheus would: every pod, or the pods N with N % 100 == K for
#      shard=sK), ADAPTER_ARGS (extra adapter flags),
#      PERF_DIR (record `perf record --call-graph dwarf` of the adapter during each wrk run
#      into PERF_DIR/<selector>-t<T>c<C>.data, for `perf report -i`).
# Uses: bench/lib.sh, wrk. Bounded: wrk runs for WRK_DURATION; every wait
# has a limit; everything started is stopped on exit.
source "$(dirname "$0")/lib.sh"

PODS=${1:-1000}
SETTINGS=${WRK_SETTINGS:-1:1 1:4 2:8 2:16 2:32}
DURATION=${WRK_DURATION:-10s}
SELECTORS=${SELECTORS:-app=bench shard=s7}
command -v wrk >/dev/null || die "wrk is not installed (scripts/deps.sh bench)"

ensure_adapter
selector_bench_setup "$PODS"

machine_info
# shellcheck disable=SC2086
start_adapter "$SELECTOR_RULES" --metrics-relist-interval=1h ${ADAPTER_ARGS:-}
wait_ready 60
base="https://127.0.0.1:$ADAPTER_PORT/apis/custom.metrics.k8s.io/v1beta1/namespaces/bench/pods/%2A/bench_metric_001"

for sel in $SELECTORS; do
    url="$base?labelSelector=$sel"
    selector_bench_vector "$sel"
    # Warm the object cache and check the answer: one item per selected pod.
    body=$BENCH_DIR/answer.json
    code=$(curl -sk -o "$body" -w '%{http_code}' --max-time 15 "$url")
    [ "$code" = 200 ] || die "warm-up answered $code: $(head -c 300 "$body")"
    items=$(luajit -e 'local d = require("cjson").decode(io.read("*a")); print(#d.items)' <"$body")
    echo "selector $sel: $items items, $(wc -c <"$body") bytes per answer"
    for s in $SETTINGS; do
        t=${s%%:*} c=${s##*:}
        out=$BENCH_DIR/wrk.out
        perf_pid=
        if [ -n "${PERF_DIR:-}" ]; then
            mkdir -p "$PERF_DIR"
            perf record -q -F 499 --call-graph dwarf -p "$ADAPTER_PID" -o "$PERF_DIR/${sel//[^a-z0-9]/_}-t${t}c$c.data" \
                -- sleep "${DURATION%s}" >/dev/null 2>&1 &
            perf_pid=$!
            BENCH_PIDS+=("$perf_pid")
        fi
        c0=$(cpu_ticks "$ADAPTER_PID")
        timeout 120 wrk -t "$t" -c "$c" -d "$DURATION" --latency "$url" >"$out" 2>&1 ||
            die "wrk failed: $(cat "$out")"
        [ -z "$perf_pid" ] || wait "$perf_pid" || true
        c1=$(cpu_ticks "$ADAPTER_PID")
        wrk_row "$t" "$c" $((c1 - c0)) "$out"
    done
done
echo "adapter RSS after the runs: $(mb "$(proc_kb "$ADAPTER_PID" VmRSS)") MB (peak $(mb "$(proc_kb "$ADAPTER_PID" VmHWM)") MB)"
n=$(curl -s "http://127.0.0.1:$KUBE_PORT/_fake/requests" | luajit -e '
    local d = require("cjson").decode(io.read("*a")); d = d.requests or d; print(#d)')
echo "Kubernetes API requests during the whole run: $n"
