#!/usr/bin/env bash
# bench/cost.sh: instructions per selector request, counted by callgrind.
# Unlike req/s and latency this figure does not depend on what else the
# machine runs, so it compares builds (ADAPTER_BIN) on a shared machine.
# Same set-up as bench/query.sh (nginx instant fake Prometheus, fake kube
# with PODS pods); the adapter runs under valgrind --tool=callgrind, its
# counters are zeroed after a warm-up, REQS requests are sent over one
# keep-alive HTTPS connection (curl), and the counts are dumped.
# Prints Ir per request for each selector and the functions with the
# highest inclusive share (callgrind_annotate --inclusive=yes).
# Usage: bench/cost.sh [PODS REQS]   (default 1000 200; the one TLS
# handshake of the connection is included, ~0.1 M Ir per request at 200)
# Env: SELECTORS (default "app=bench shard=s7"), ADAPTER_BIN, KEEP_OUT (a
#      directory to keep the callgrind.out files in).
# Uses: bench/lib.sh, valgrind. Bounded; everything started is stopped.
source "$(dirname "$0")/lib.sh"

PODS=${1:-1000}
REQS=${2:-200}
SELECTORS=${SELECTORS:-app=bench shard=s7}
command -v callgrind_control >/dev/null || die "valgrind is not installed"

ensure_adapter
selector_bench_setup "$PODS"

machine_info
out=${KEEP_OUT:-$BENCH_DIR}
mkdir -p "$out"
ADAPTER_WRAP="valgrind --tool=callgrind --quiet --callgrind-out-file=$out/callgrind.out.%p" \
    start_adapter "$SELECTOR_RULES" --metrics-relist-interval=1h
wait_ready 120
base="https://127.0.0.1:$ADAPTER_PORT/apis/custom.metrics.k8s.io/v1beta1/namespaces/bench/pods/%2A/bench_metric_001"
for sel in $SELECTORS; do
    url="$base?labelSelector=$sel"
    selector_bench_vector "$sel"
    urls=()
    for _ in $(seq "$REQS"); do urls+=("$url"); done
    # warm-up: object cache, this thread's engine, connections. A neutral
    # User-Agent, as wrk's: a curl agent gets pretty-printed JSON (§4.6).
    curl -sk -A bench --max-time 120 "${urls[@]:0:8}" >/dev/null
    callgrind_control -z "$ADAPTER_PID" >/dev/null 2>&1
    timeout 600 curl -sk -A bench "${urls[@]}" >/dev/null
    part=$((${part:-0} + 1))
    callgrind_control -d "sel-${sel//[^a-z0-9]/_}" "$ADAPTER_PID" >/dev/null 2>&1
    f=$out/callgrind.out.$ADAPTER_PID.$part
    for _ in $(seq 100); do [ -s "$f" ] && break; sleep 0.1; done
    total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    echo "selector $sel: $(awk -v t="$total" -v n="$REQS" 'BEGIN { printf "%.0f", t / n }') Ir per request ($REQS requests)"
    # inclusive cost per function, >= 3% of the total, without the thread
    # start-up frames every request sits under
    callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
        awk '/^ *[0-9,]+ \([0-9.]+%\) / {
                 fn = $3; sub(/^.*:/, "", fn)
                 if (fn ~ /^(clone|start_thread|0x[0-9a-f]+.*|=>|PROGRAM|events)$/) next
                 p = $2; gsub(/[()%]/, "", p); if (p + 0 < 3) next
                 printf "    %6s%%  %s\n", p, fn }' | head -"${TOP:-30}"
done
