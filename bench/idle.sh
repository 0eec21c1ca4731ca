#!/usr/bin/env bash
# bench/idle.sh: idle RSS of the adapter with the default rules
# (bench/default-rules.yaml: config-gen's default of spec-rules.md §8 with
# --rate-interval=5m, until rules/default.yaml exists). The adapter relists
# every 5 s against nginx (two series queries per relist, both answered with
# the same static file) and gets no request. Prints VmRSS once ready, the
# highest VmRSS seen over IDLE_SECS, VmRSS at the end with its anonymous /
# file-backed split, VmHWM, the thread count and the largest mappings.
# Usage: bench/idle.sh [PODS NAMES]   (default 0 0: Prometheus has no series;
#        e.g. 1000 10 for 10,000 series, 10 metrics per query)
# Env: IDLE_SECS (default 15), RULES (default bench/default-rules.yaml).
# Uses: bench/lib.sh. Bounded; everything started is stopped on exit.
source "$(dirname "$0")/lib.sh"

PODS=${1:-0}
NAMES=${2:-0}
SECS=${IDLE_SECS:-15}
RULES=${RULES:-$BENCH_SRC/default-rules.yaml}

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
echo "idle RSS at the end: $(mb "$(proc_kb "$ADAPTER_PID" VmRSS)") MB" \
    "(anon $(mb "$(proc_kb "$ADAPTER_PID" RssAnon)") MB," \
    "file $(mb "$(proc_kb "$ADAPTER_PID" RssFile)") MB)," \
    "peak VmHWM $(mb "$(proc_kb "$ADAPTER_PID" VmHWM)") MB," \
    "$(awk '$1 == "Threads:" { print $2 }' "/proc/$ADAPTER_PID/status") threads"
echo "largest resident mappings (smaps Rss, kB):"
awk '
    /^[0-9a-f]+-[0-9a-f]+ / { name = NF >= 6 ? $6 : "[anon]" }
    $1 == "Rss:" { rss[name] += $2 }
    END { for (n in rss) if (rss[n] >= 256) printf "  %6d  %s\n", rss[n], n }
' "/proc/$ADAPTER_PID/smaps" | sort -rn | head -14
grep -E '^[EW]' "$ADAPTER_LOG" | head -5 >&2 || true
