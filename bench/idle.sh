#!/usr/bin/env bash
# bench/idle.sh: idle RSS of the adapter with the default rules
# (rules/default.yaml). The adapter relists every 5 s against nginx (two
# series queries per relist, both answered with the same static file) and
# gets no request but the /readyz polls that wait for it. Prints VmRSS once
# ready, the highest VmRSS seen over IDLE_SECS, VmRSS at the end (also in
# kB, to compare builds) with its anonymous / file-backed split, VmHWM, the
# thread count and the largest mappings.
# Usage: bench/idle.sh [PODS NAMES]   (default 0 0: Prometheus has no series;
#        e.g. 1000 10 for 10,000 series, 10 metrics per query)
# Env: IDLE_SECS (default 15), RULES (default rules/default.yaml),
#      IDLE_DUMP=DIR (copies /proc/PID/smaps and status, and the thread
#      names, into DIR at the end: where the RSS is, mapping by mapping),
#      IDLE_PROBES=N (then N sequential /readyz + /livez pairs, as kubelet's
#      probes come, and VmRSS and threads after them; default 0: none).
# Uses: bench/lib.sh. Bounded; everything started is stopped on exit.
source "$(dirname "$0")/lib.sh"

PODS=${1:-0}
NAMES=${2:-0}
SECS=${IDLE_SECS:-15}
RULES=${RULES:-$ROOT/rules/default.yaml}

ensure_adapter
if [ "$PODS" -gt 0 ]; then
    series=$(gen_cached series "series-${PODS}x${NAMES}.json" "$PODS" "$NAMES")
else
    series=$BENCH_CACHE/series-empty.json
    echo '{"status":"success","data":[]}' >"$series"
fi
query=$(gen_cached vector "vector-10.json" 10 bench)
start_nginx "$series" "$query"
start_kube

# First start generates the serving certificate (not part of the figure).
start_adapter "$RULES" --metrics-relist-interval=1h
wait_ready 60
stop_adapter

machine_info
echo "rules: $RULES; Prometheus: $((PODS * NAMES)) series per series query"
start_adapter "$RULES" --metrics-relist-interval=5s
wait_ready 60
ready=$(proc_kb "$ADAPTER_PID" VmRSS)
max=$ready
for _ in $(seq "$SECS"); do
    sleep 1
    kill -0 "$ADAPTER_PID" 2>/dev/null || die "adapter exited: $(tail -20 "$ADAPTER_LOG")"
    r=$(proc_kb "$ADAPTER_PID" VmRSS)
    [ "$r" -gt "$max" ] && max=$r
done
echo "idle RSS when ready: $(mb "$ready") MB"
echo "idle RSS highest over ${SECS} s (about $((SECS / 5)) relists): $(mb "$max") MB"
end_kb=$(proc_kb "$ADAPTER_PID" VmRSS)
echo "idle RSS at the end: $(mb "$end_kb") MB ($end_kb kB;" \
    "anon $(mb "$(proc_kb "$ADAPTER_PID" RssAnon)") MB," \
    "file $(mb "$(proc_kb "$ADAPTER_PID" RssFile)") MB)," \
    "peak VmHWM $(mb "$(proc_kb "$ADAPTER_PID" VmHWM)") MB," \
    "$(proc_kb "$ADAPTER_PID" Threads) threads"
echo "largest resident mappings (smaps Rss, kB):"
awk '
    /^[0-9a-f]+-[0-9a-f]+ / { name = NF >= 6 ? $6 : "[anon]" }
    $1 == "Rss:" { rss[name] += $2 }
    END { for (n in rss) if (rss[n] >= 256) printf "  %6d  %s\n", rss[n], n }
' "/proc/$ADAPTER_PID/smaps" | sort -rn | head -14
if [ -n "${IDLE_DUMP:-}" ]; then
    mkdir -p "$IDLE_DUMP"
    cp "/proc/$ADAPTER_PID/smaps" "/proc/$ADAPTER_PID/status" "$IDLE_DUMP/"
    for t in "/proc/$ADAPTER_PID"/task/*; do
        echo "$(basename "$t") $(cat "$t/comm")"
    done >"$IDLE_DUMP/threads"
fi
if [ "${IDLE_PROBES:-0}" -gt 0 ]; then
    for _ in $(seq "$IDLE_PROBES"); do
        for p in readyz livez; do
            curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$ADAPTER_PORT/$p" || true
        done
    done
    sleep 1
    probe_kb=$(proc_kb "$ADAPTER_PID" VmRSS)
    echo "idle RSS after $IDLE_PROBES /readyz + /livez pairs:" \
        "$(mb "$probe_kb") MB ($probe_kb kB)," \
        "$(proc_kb "$ADAPTER_PID" Threads) threads"
fi
grep -E '^[EW]' "$ADAPTER_LOG" | head -5 >&2 || true
