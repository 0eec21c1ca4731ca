#!/usr/bin/env bash
# bench/soak.sh: a soak of the ASan+UBSan build under mixed API traffic
# (issue 10). Not part of `make test`.
#
#   make build-asan && bench/soak.sh            # 30 minutes
#   SOAK_SECONDS=600 bench/soak.sh              # any duration
#
# What runs: the adapter (build-asan/promlua-adapter unless ADAPTER_BIN is
# set) against the spec fakes (fake_prometheus.lua with the
# custom_metrics.json series and a non-empty default answer; fake_kube.lua
# with objects.json); SOAK_CLIENTS (default 4) curl loops cycling through
# discovery, custom by name / by selector / all pods, v1beta1 and v1beta2,
# external, an unknown metric (404 expected), /metrics, /readyz, /livez;
# --metrics-relist-interval=10s; a pod added or changed every 10 s and the
# pods watch expired (410, forcing a re-LIST) every 60 s; the config
# rewritten (alternating two valid rule sets) and SIGHUP sent every 60 s.
# Every 10 s VmRSS, VmHWM, threads and descriptors go to soak.csv.
# Verdict: RSS drift within +-10 %, comparing the mean VmRSS of the 150 s
# after warm-up (SOAK_WARMUP, default 300 s: ASan's 256 MiB quarantine of
# freed blocks takes minutes to fill at this request rate; at most a fifth
# of the run) with the mean of the last 150 s (single samples swing by
# ~10 % with malloc arena reuse across 16 worker threads); zero unexpected
# statuses, zero error log lines (E...), zero sanitizer reports (leaks
# included, checked after a clean SIGTERM), the process alive throughout.
# Exit 0 on PASS, 1 on FAIL.
# SOAK_OUT=file also writes the summary there. BENCH_KEEP=1 keeps the
# work directory (logs, csv).
# Uses: bench/lib.sh, luajit, curl. Never stops processes it did not start.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECONDS_TOTAL=${SOAK_SECONDS:-1800}
CLIENTS=${SOAK_CLIENTS:-4}
WARMUP=${SOAK_WARMUP:-300}
[ "$WARMUP" -le $((SECONDS_TOTAL / 5)) ] || WARMUP=$((SECONDS_TOTAL / 5))
ADAPTER_BIN=${ADAPTER_BIN:-$ROOT/build-asan/promlua-adapter}
[ -x "$ADAPTER_BIN" ] || die "no $ADAPTER_BIN: run make build-asan (or set ADAPTER_BIN)"
# a private copy: a rebuild of build-asan during the soak must not matter
cp "$ADAPTER_BIN" "$BENCH_DIR/promlua-adapter"
SOAK_BIN_FROM=$ADAPTER_BIN
ADAPTER_BIN=$BENCH_DIR/promlua-adapter

SAN=$BENCH_DIR/sanitizer
mkdir -p "$SAN"
export ASAN_OPTIONS="detect_leaks=1:log_path=$SAN/asan:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$SAN/ubsan"

# -- fakes ---------------------------------------------------------------------
start_kube "$ROOT/spec/fixtures/kube/objects.json"
PROM_OUT=$BENCH_DIR/prom.out
(cd "$ROOT" && ASAN_OPTIONS= exec luajit spec/fixtures/fake_prometheus.lua --port 0 \
    --state-file spec/fixtures/prometheus/custom_metrics.json) >"$PROM_OUT" 2>"$BENCH_DIR/prom.err" &
BENCH_PIDS+=($!)
for _ in $(seq 100); do
    PROM_PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$PROM_OUT" | head -1)
    [ -n "$PROM_PORT" ] && break
    sleep 0.1
done
[ -n "${PROM_PORT:-}" ] || die "fake prometheus did not start"
NGINX_PORT=$PROM_PORT   # lib.sh's start_adapter points --prometheus-url there
curl -s -o /dev/null -X POST "http://127.0.0.1:$PROM_PORT/_fake/default" -d '{"result":{"resultType":"vector","result":[
  {"metric":{"kubernetes_namespace":"default","kubernetes_pod_name":"sample-app-7cfb596f98-8h5mv","namespace":"default","pod":"sample-app-7cfb596f98-8h5mv"},"value":[1715851267.123,"1.5"]},
  {"metric":{"kubernetes_namespace":"default","kubernetes_pod_name":"sample-app-7cfb596f98-kq2zd","namespace":"default","pod":"sample-app-7cfb596f98-kq2zd"},"value":[1715851267.123,"2.5"]}]}}'

# -- config (two valid variants, swapped on every reload) -----------------------
config_variant() { # $1 = rate window
    cat <<YAML
rules:
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
      kubernetes_pod_name: {resource: "pod"}
  name: {matches: "^(.*)_total", as: "\${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[$1])) by (<<.GroupBy>>)'
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: '.*_total$'}]
  resources: {template: '<<.Resource>>'}
  name: {matches: "", as: ""}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
  name: {matches: "^(.*)_total", as: "\${1}_ext"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[$1])) by (kubernetes_pod_name)'
YAML
}
CFG=$BENCH_DIR/config.yaml
config_variant 2m >"$CFG"

start_adapter "$CFG" --metrics-relist-interval=10s
wait_ready 60

# -- traffic ---------------------------------------------------------------------
B=https://127.0.0.1:$ADAPTER_PORT
URLS=(
  "200 $B/apis/custom.metrics.k8s.io/v1beta2"
  "200 $B/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_per_second"
  "200 $B/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/sample-app-7cfb596f98-8h5mv/http_requests_per_second"
  "200 $B/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_per_second?labelSelector=app%3Dsample-app"
  "200 $B/apis/external.metrics.k8s.io/v1beta1/namespaces/default/http_requests_ext"
  "404 $B/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/no_such_metric"
  "200 $B/apis/external.metrics.k8s.io/v1beta1"
  "200 $B/metrics"
  "200 $B/readyz"
  "200 $B/livez"
)
STOP=$BENCH_DIR/stop
client() { # $1 = index: one curl per cycle (keep-alive over the URL list)
    local out=$BENCH_DIR/client-$1.log args=() u
    for u in "${URLS[@]}"; do args+=(-o /dev/null "${u#* }"); done
    while [ ! -e "$STOP" ]; do
        curl -sk --max-time 20 -w '%{http_code}\n' -H 'Accept: application/json' \
            "${args[@]}" >>"$out" 2>/dev/null || true
        echo "--" >>"$out"
    done
}
CLIENT_PIDS=()
for i in $(seq "$CLIENTS"); do client "$i" & CLIENT_PIDS+=($!); BENCH_PIDS+=($!); done

# -- the clock: samples, churn, expiry, reloads -----------------------------------
CSV=$BENCH_DIR/soak.csv
echo "t,rss_kb,hwm_kb,threads,fds" >"$CSV"
KB=http://127.0.0.1:$KUBE_PORT
start=$(date +%s); t=0; reloads=0; n=0
while [ "$t" -lt "$SECONDS_TOTAL" ]; do
    kill -0 "$ADAPTER_PID" 2>/dev/null || { echo "adapter died at t=$t" >"$BENCH_DIR/died"; break; }
    echo "$t,$(proc_kb "$ADAPTER_PID" VmRSS),$(proc_kb "$ADAPTER_PID" VmHWM),$(awk '$1=="Threads:"{print $2}' "/proc/$ADAPTER_PID/status"),$(ls "/proc/$ADAPTER_PID/fd" | wc -l)" >>"$CSV"
    n=$((n + 1))
    curl -s -o /dev/null -X POST "$KB/_fake/objects" -d "{\"resource\":\"pods\",\"items\":[{\"name\":\"soak-$((n % 20))\",\"namespace\":\"default\",\"labels\":{\"app\":\"soak\",\"gen\":\"$n\"}}]}" || true
    if [ $((n % 6)) -eq 0 ]; then
        curl -s -o /dev/null -X POST "$KB/_fake/expire" -d '{"resource":"pods","mode":"event"}' || true
        if [ $(((n / 6) % 2)) -eq 1 ]; then config_variant 5m >"$CFG.new"; else config_variant 2m >"$CFG.new"; fi
        mv "$CFG.new" "$CFG"
        kill -HUP "$ADAPTER_PID" 2>/dev/null || true
        reloads=$((reloads + 1))
    fi
    sleep 10
    t=$(( $(date +%s) - start ))
done
touch "$STOP"
# each client finishes its cycle (curl --max-time bounds it)
wait "${CLIENT_PIDS[@]}" 2>/dev/null || true
alive=yes
kill -0 "$ADAPTER_PID" 2>/dev/null || alive=no
stop_adapter
sleep 1

# -- verdict --------------------------------------------------------------------------
ok=0; bad=0
for i in $(seq "$CLIENTS"); do
    # the k-th status line of a cycle belongs to URLS[k]
    res=$(awk -v list="$(printf '%s\n' "${URLS[@]}" | awk '{print $1}' | paste -sd,)" '
        BEGIN { n = split(list, want, ",") }
        $0 == "--" { k = 0; next }
        { k++; if (k <= n && $0 == want[k]) ok++; else bad++ }
        END { printf "%d %d\n", ok, bad }' "$BENCH_DIR/client-$i.log")
    ok=$((ok + ${res% *})); bad=$((bad + ${res#* }))
done
san_reports=$(find "$SAN" -type f | wc -l)
read -r base final maxrss <<<"$(awk -F, -v w="$WARMUP" -v end="$(tail -1 "$CSV" | cut -d, -f1)" '
    NR > 1 {
        if ($1 >= w && $1 < w + 150) { bs += $2; bn++ }
        if ($1 > end - 150) { fs += $2; fn++ }
        if ($1 >= w && $2 > max) max = $2 }
    END { printf "%d %d %d\n", bn ? bs / bn : 0, fn ? fs / fn : 0, max }' "$CSV")"
drift=$(awk -v b="$base" -v f="$final" 'BEGIN { if (b > 0) printf "%.1f", (f - b) * 100 / b; else print "nan" }')
ran=$(( $(date +%s) - start ))
elog=$(grep -c '^E' "$ADAPTER_LOG" || true)
reloaded=$(grep -c 'config reloaded' "$ADAPTER_LOG" || true)
verdict=PASS
awk -v d="$drift" 'BEGIN { exit !(d == "nan" || d > 10 || d < -10) }' && verdict=FAIL
[ "$bad" -eq 0 ] || verdict=FAIL
# "zero errors" covers the adapter's own error log too: a failed relist or
# reload is an error even when every client status was as expected
[ "$elog" -eq 0 ] || verdict=FAIL
[ "$san_reports" -eq 0 ] || verdict=FAIL
[ "$alive" = yes ] || verdict=FAIL
summary=$(cat <<TXT
soak: $verdict
  ran ${ran} s (asked ${SECONDS_TOTAL} s, warm-up ${WARMUP} s), binary $SOAK_BIN_FROM
  requests: $ok as expected, $bad unexpected ($CLIENTS clients)
  RSS (150 s means): $(mb "$base") MB after warm-up, $(mb "$final") MB at the end (drift ${drift} %), max after warm-up $(mb "$maxrss") MB
  reloads: $reloads SIGHUPs sent, $reloaded "config reloaded" log lines; error log lines: $elog
  sanitizer reports: $san_reports; adapter alive at the end: $alive
TXT
)
echo "$summary"
[ -z "${SOAK_OUT:-}" ] || echo "$summary" >"$SOAK_OUT"
if [ "$san_reports" -ne 0 ]; then cat "$SAN"/* | head -100; fi
[ "$elog" -eq 0 ] || grep '^E' "$ADAPTER_LOG" | sort | uniq -c | sort -rn | head -10
cp "$CSV" "${SOAK_CSV:-/tmp/soak-last.csv}" 2>/dev/null || true
[ "$verdict" = PASS ]
