#!/usr/bin/env bash
# bench/run-all.sh: every benchmark of bench/README.md in turn, each bounded
# by `timeout`, sharing one data cache and one adapter build (HEAD).
# Usage: bench/run-all.sh   (env as for the single scripts)
# Uses: bench/relist.sh, bench/query.sh, bench/idle.sh.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BENCH_CACHE=${BENCH_CACHE:-/tmp/promlua-bench-cache}
rc=0
for b in "relist.sh" "query.sh" "idle.sh" "idle.sh 1000 10"; do
    echo "== bench/$b"
    # shellcheck disable=SC2086
    timeout -k 5 900 "$here"/$b || { echo "bench/$b failed ($?)"; rc=1; }
done
exit $rc
