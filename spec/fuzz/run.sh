#!/usr/bin/env bash
# spec/fuzz/run.sh: run the libFuzzer targets of build-fuzz/fuzz/.
#   spec/fuzz/run.sh smoke   every committed corpus input once, then a short
#                            fuzz of each target (FUZZ_SMOKE_SECONDS in all,
#                            default 20, split over the targets): `make test`
#   spec/fuzz/run.sh fuzz    FUZZ_SECONDS (default 60) of fuzzing per target:
#                            `make fuzz`
# FUZZ_TARGETS="selector yaml" limits the run to some targets.
# New inputs found while fuzzing go to build-fuzz/corpus/<target>/ (not
# committed); a crash leaves its input in spec/tmp/fuzz/<target>/ and fails
# the run with libFuzzer's report. Keep a crash input as
# spec/fuzz/<target>/crash-<what> once it is fixed.
# Exit status: 0 when every target ran clean, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
mode=${1:-smoke}
bindir="$root/build-fuzz/fuzz"
outdir="$root/spec/tmp/fuzz"
targets=${FUZZ_TARGETS:-$(cd spec/fuzz && for d in */; do
    d=${d%/}; [ "$d" != targets ] && [ -x "$bindir/fuzz_$d" ] && echo "$d"; done)}
[ -n "$targets" ] || { echo "fuzz: no targets built in $bindir" >&2; exit 1; }
ntargets=$(echo $targets | wc -w)
case "$mode" in
    smoke) secs=$(( ${FUZZ_SMOKE_SECONDS:-20} / ntargets )); [ "$secs" -ge 1 ] || secs=1 ;;
    fuzz)  secs=${FUZZ_SECONDS:-60} ;;
    *) echo "usage: $0 [smoke|fuzz]" >&2; exit 2 ;;
esac
# leaks are bugs too; a sanitizer report stops the run (UBSan included)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0; ok=0; bad=0
for t in $targets; do
    bin="$bindir/fuzz_$t"
    seeds="$root/spec/fuzz/$t"
    work="$root/build-fuzz/corpus/$t"
    mkdir -p "$work" "$outdir/$t"
    log="$outdir/$t/log"
    # 1. every committed input once (regressions)
    if ! "$bin" -timeout=20 -rss_limit_mb=2048 "$seeds"/* >"$log" 2>&1; then
        echo "fuzz $t: FAILED on the committed corpus (spec/fuzz/$t)"; tail -n 60 "$log"
        status=1; bad=$((bad + 1)); continue
    fi
    # 2. fuzzing from the committed corpus plus what earlier runs found
    if ! "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
            -max_len=65536 -print_final_stats=1 \
            -artifact_prefix="$outdir/$t/" "$work" "$seeds" >"$log" 2>&1; then
        echo "fuzz $t: FAILED after fuzzing (input in spec/tmp/fuzz/$t/)"; tail -n 60 "$log"
        status=1; bad=$((bad + 1)); continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz $t: ok (${runs:-?} runs in ${secs}s)"
    ok=$((ok + 1))
done
echo "fuzz: $ok targets clean, $bad failed"
exit $status
