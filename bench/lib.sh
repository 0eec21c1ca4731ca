# shellcheck shell=bash
# bench/lib.sh: shared set-up for the benchmark scripts (sourced, not run).
# Provides: a work directory, free loopback ports, nginx as a static fake
# Prometheus (bench/nginx.conf.in), the spec fake Kubernetes API
# (spec/fixtures/fake_kube.lua), a kubeconfig for it, the adapter under test,
# /readyz waits, RSS readings from /proc, and a cleanup trap that stops
# exactly the processes started here (by pid, never by name).
# Uses: bash, luajit + lua-socket, nginx (nginx-light), curl, cmake, git,
# the adapter binary (ADAPTER_BIN, else built from HEAD, see ensure_adapter).
# Must never: write outside BENCH_DIR and BENCH_CACHE,
# leave a process running, or wait without a bound.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_SRC=$ROOT/bench
# One work directory per run; data files are cached across runs in
# BENCH_CACHE so the 1M-series file (~140 MB) is generated once.
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/promlua-bench.XXXXXX)}
BENCH_CACHE=${BENCH_CACHE:-/tmp/promlua-bench-cache}
mkdir -p "$BENCH_DIR" "$BENCH_CACHE"
# nginx workers may run as another user (nobody when started by root):
# they must be able to read the data files.
chmod 755 "$BENCH_DIR" "$BENCH_CACHE"

BENCH_PIDS=()

bench_cleanup() {
    local p
    for p in "${BENCH_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${BENCH_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        # bounded wait (2 s), then SIGKILL
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BENCH_DIR"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '# %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# A TCP port free right now on 127.0.0.1.
free_port() {
    luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
               local _, p = s:getsockname(); s:close(); print(p)'
}

# Sets ADAPTER_BIN. Unless ADAPTER_BIN is given, builds the committed tree
# (git archive HEAD, so uncommitted edits in the work tree cannot change or
# break the figures) as RelWithDebInfo, like `make build`, into
# BENCH_CACHE/build-<commit>, once per commit.
ensure_adapter() {
    if [ -z "${ADAPTER_BIN:-}" ]; then
        local rev src
        rev=$(cd "$ROOT" && git rev-parse --short=12 HEAD)
        src=$BENCH_CACHE/src-$rev
        ADAPTER_BIN=$src/build/promlua-adapter
        if [ ! -x "$ADAPTER_BIN" ]; then
            log "building $rev into $src"
            rm -rf "$src" && mkdir -p "$src"
            (cd "$ROOT" && git archive HEAD) | tar -x -C "$src"
            if ! (cd "$src" && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
                cmake --build build -j "$(nproc)" >"$src/build.log" 2>&1); then
                # HEAD can be briefly inconsistent while several people
                # commit: fall back to the newest earlier build.
                ADAPTER_BIN=$(ls -t "$BENCH_CACHE"/src-*/build/promlua-adapter 2>/dev/null | head -1)
                [ -n "$ADAPTER_BIN" ] || die "build of $rev failed (see $src/build.log); set ADAPTER_BIN"
                log "build of $rev failed (see $src/build.log); using $ADAPTER_BIN"
            fi
        fi
    fi
    [ -x "$ADAPTER_BIN" ] || die "no adapter binary at $ADAPTER_BIN"
}

# gen_cached KIND NAME ARGS...: bench/gen_series.lua output, cached by name.
gen_cached() {
    local kind=$1 name=$2; shift 2
    local f=$BENCH_CACHE/$name
    if [ ! -s "$f" ] || [ "$f" -ot "$BENCH_SRC/gen_series.lua" ]; then
        log "generating $name"
        (cd "$ROOT" && luajit bench/gen_series.lua "$kind" "$f.tmp" "$@") && mv "$f.tmp" "$f"
    fi
    echo "$f"
}

# start_nginx SERIES_FILE QUERY_FILE -> sets NGINX_PORT. Static answers for
# /api/v1/series and /api/v1/query (GET and POST).
start_nginx() {
    local d=$BENCH_DIR/nginx
    mkdir -p "$d/tmp"
    ln -sf "$1" "$d/series.json"
    ln -sf "$2" "$d/query.json"
    NGINX_PORT=$(free_port)
    sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$NGINX_PORT|g" "$BENCH_SRC/nginx.conf.in" >"$d/nginx.conf"
    nginx -e "$d/nginx-error.log" -p "$d" -c "$d/nginx.conf" &
    BENCH_PIDS+=($!)
    wait_http "http://127.0.0.1:$NGINX_PORT/api/v1/query" 10 || die "nginx did not start: $(tail -5 "$d/nginx-error.log")"
}

# start_kube [STATE_FILE] -> sets KUBE_PORT, KUBECONFIG_FILE.
start_kube() {
    local out=$BENCH_DIR/kube.out
    (cd "$ROOT" && exec luajit spec/fixtures/fake_kube.lua --port 0 ${1:+--state-file "$1"}) \
        >"$out" 2>"$BENCH_DIR/kube.err" &
    BENCH_PIDS+=($!)
    for _ in $(seq 100); do
        KUBE_PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$out" | head -1)
        [ -n "$KUBE_PORT" ] && break
        sleep 0.1
    done
    [ -n "${KUBE_PORT:-}" ] || die "fake kube did not start: $(tail -5 "$BENCH_DIR/kube.err")"
    KUBECONFIG_FILE=$BENCH_DIR/kubeconfig
    cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:$KUBE_PORT
users:
- name: fake
  user:
    token: fake-token
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
current-context: fake
EOF
}

# wait_http URL SECONDS: until URL answers 200 (curl -k), bounded.
wait_http() {
    local url=$1 secs=$2
    for _ in $(seq $((secs * 20))); do
        [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null)" = 200 ] && return 0
        sleep 0.05
    done
    return 1
}

# start_adapter CONFIG ARGS... -> sets ADAPTER_PID, ADAPTER_PORT,
# ADAPTER_LOG, ADAPTER_START (epoch seconds, float). Does not wait.
# ADAPTER_WRAP: a command prefix (e.g. valgrind) that runs the adapter in
# the same process, so ADAPTER_PID stays the adapter's.
# The serving certificate is generated once per work directory. Delegated
# authentication and authorization use the fake kube too (as the specs do):
# wrk's requests are anonymous and the fake allows every review.
start_adapter() {
    local cfg=$1; shift
    ADAPTER_PORT=$(free_port)
    ADAPTER_LOG=$BENCH_DIR/adapter.log
    mkdir -p "$BENCH_DIR/certs"
    # shellcheck disable=SC2034  # read by the scripts
    ADAPTER_START=$(date +%s.%N)
    # shellcheck disable=SC2086
    ${ADAPTER_WRAP:-} "$ADAPTER_BIN" --secure-port="$ADAPTER_PORT" --bind-address=127.0.0.1 \
        --cert-dir="$BENCH_DIR/certs" --config="$cfg" \
        --prometheus-url="http://127.0.0.1:${NGINX_PORT:?}" \
        --lister-kubeconfig="${KUBECONFIG_FILE:?}" \
        --authentication-kubeconfig="$KUBECONFIG_FILE" \
        --authorization-kubeconfig="$KUBECONFIG_FILE" \
        --authentication-tolerate-lookup-failure=true "$@" 2>"$ADAPTER_LOG" &
    ADAPTER_PID=$!
    BENCH_PIDS+=("$ADAPTER_PID")
}

# wait_ready SECONDS: until the adapter's /readyz answers 200.
wait_ready() {
    for _ in $(seq $(($1 * 20))); do
        [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 \
            "https://127.0.0.1:$ADAPTER_PORT/readyz" 2>/dev/null)" = 200 ] && return 0
        kill -0 "$ADAPTER_PID" 2>/dev/null || die "adapter exited; log: $(tail -20 "$ADAPTER_LOG")"
        sleep 0.05
    done
    die "adapter not ready after $1 s; log: $(tail -20 "$ADAPTER_LOG")"
}

stop_adapter() {
    kill "$ADAPTER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ADAPTER_PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$ADAPTER_PID" 2>/dev/null || true
}

# proc_kb PID FIELD: a /proc/PID/status field (VmRSS, VmHWM) in kB.
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# klog_time LINE: seconds since midnight (UTC) of a klog line
# ("I1129 12:08:10.123456 ...").
klog_time() {
    awk '{ split($2, t, ":"); printf "%.6f\n", t[1] * 3600 + t[2] * 60 + t[3] }' <<<"$1"
}

machine_info() {
    echo "machine: nproc $(nproc), $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)," \
        "$(free -m | awk '/^Mem:/ { print $2 " MB RAM" }'), kernel $(uname -r)," \
        "Debian $(cat /etc/debian_version 2>/dev/null || echo ?)"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "adapter: $ADAPTER_BIN"
}

# selector_bench_setup PODS: the set-up query.sh and cost.sh share: nginx
# serving PODS series of bench_metric_001_total and a PODS-sample vector,
# the fake Kubernetes API holding PODS Running pods pod-00001.. in
# namespace "bench" (app=bench on all, shard=s<i mod 100>), and the rules
# file for them; sets SELECTOR_RULES to that file's path.
selector_bench_setup() {
    local pods=$1 series query state
    SELECTOR_PODS=$pods
    series=$(gen_cached series "series-${pods}x1.json" "$pods" 1)
    query=$(gen_cached vector "vector-${pods}.json" "$pods" bench)
    start_nginx "$series" "$query"
    state=$BENCH_DIR/kube-state.json
    PODS=$pods luajit -e '
        local cjson = require "cjson"
        local n, items = tonumber(os.getenv("PODS")), {}
        for i = 1, n do
            items[i] = { name = string.format("pod-%05d", i), namespace = "bench",
                labels = { app = "bench", shard = "s" .. (i % 100) }, phase = "Running" }
        end
        io.write(cjson.encode({ objects = { { resource = "pods", items = items } } }))
    ' >"$state"
    start_kube "$state"
    SELECTOR_RULES=$BENCH_DIR/query-rules.yaml
    bench_rules "$SELECTOR_RULES"
}

# bench_rules FILE: writes to FILE the one custom rule the generated
# bench_metric_NNN_total series are served by (relist.sh, query.sh, cost.sh).
bench_rules() {
    cat >"$1" <<'YAML'
rules:
- seriesQuery: '{__name__=~"^bench_metric_.*",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: ""}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)'
YAML
}

# selector_bench_vector SEL: makes nginx answer queries with the vector a
# real Prometheus would give for label selector SEL (after
# selector_bench_setup): every pod, or for shard=sK the pods N with
# N % 100 == K.
selector_bench_vector() {
    local vec
    if [[ $1 =~ ^shard=s([0-9]+)$ ]]; then
        vec=$(gen_cached vector "vector-${SELECTOR_PODS}-mod100-${BASH_REMATCH[1]}.json" \
            "$SELECTOR_PODS" bench 100 "${BASH_REMATCH[1]}")
    else
        vec=$(gen_cached vector "vector-${SELECTOR_PODS}.json" "$SELECTOR_PODS" bench)
    fi
    ln -sfn "$vec" "$BENCH_DIR/nginx/query.json"
}

# wrk_row T C TICKS FILE: one result line from wrk --latency output FILE
# (T threads, C connections) and the adapter CPU ticks it used: req/s,
# p50/p90/p99, CPU per request, load average, and any errors.
wrk_row() {
    awk -v t="$1" -v c="$2" -v ticks="$3" -v hz="$(getconf CLK_TCK)" \
        -v load="$(cut -d' ' -f1 /proc/loadavg)" '
        / requests in / { nreq = $1 }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = $2 } $1 == "90%" { p90 = $2 } $1 == "99%" { p99 = $2 }
        /Non-2xx/ { bad = $NF }
        /Socket errors/ { errs = $0 }
        END { printf "  wrk -t%d -c%-3d %7.1f req/s  p50 %-8s p90 %-8s p99 %-8s cpu %.2f ms/req  load %s%s%s\n",
              t, c, rps, p50, p90, p99, nreq ? ticks * 1000 / hz / nreq : 0, load,
              bad ? "  NON-2XX " bad : "", errs ? "  " errs : "" }
    ' "$4"
}
