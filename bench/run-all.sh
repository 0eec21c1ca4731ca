#!/usr/bin/env bash
# bench/run-all.sh: every benchmark of bench/README.md in turn, each bounded
# by `timeout`, sharing one data cache and one adapter build (HEAD when
# this starts, or ADAPTER_BIN), so the figures of one run are of one build.
# Usage: bench/run-all.sh   (env as for the single scripts)
# Uses: bench/lib.sh (ensure_adapter), bench/relist.sh, bench/query.sh,
# bench/idle.sh.
here=$(cd "$(dirname "$0")" && pwd)
export BENCH_CACHE=${BENCH_CACHE:-/tmp/promlua-bench-cache}
source "$here/lib.sh"
ensure_adapter
export ADAPTER_BIN
set +e
rc=0
for b in "relist.sh" "query.sh" "idle.sh" "idle.sh 1000 10"; do
    echo "== bench/$b"
    # shellcheck disable=SC2086
    timeout -k 5 900 "$here"/$b || { echo "bench/$b failed ($?)"; rc=1; }
done
exit $rc
