#!/usr/bin/env bash
# run-specs.sh: run the busted specs under LuaJIT, once against build/,
# the custom/external metrics specs a second time with the parity hooks
# loaded, and once more (integration specs only: they are the ones that run
# the binary) against build-asan/, where any sanitizer report fails the run.
# Prints a closing "N passed, N failed" line for CI.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
busted=$(command -v busted)
passed=0; failed=0; status=0

run() { # $1 = label, rest = busted args; env decides which binary
  local label=$1; shift
  local log; log=$(mktemp)
  echo "== specs ($label)"
  luajit "$busted" -o TAP "$@" 2>&1 | tee "$log"
  local p f
  p=$(grep -c '^ok ' "$log"); f=$(grep -c '^not ok ' "$log")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -ne 0 ] || ! grep -q '^1\.\.' "$log"; then status=1; fi
  rm -f "$log"
}

mkdir -p spec/tmp
ADAPTER_BIN="$root/build/promlua-adapter" run normal spec

# Hook parity (issue 7): the custom and external metrics specs again, with
# rules/examples/parity.lua re-implementing every default step through the
# hook API loaded into every adapter (spec/helpers.lua reads ADAPTER_PARITY).
ADAPTER_PARITY=1 ADAPTER_BIN="$root/build/promlua-adapter" run parity \
  spec/integration/custom_metrics_spec.lua spec/integration/external_metrics_spec.lua

if [ -z "${ADAPTER_SKIP_ASAN:-}" ]; then
  sandir="$root/spec/tmp/sanitizer"
  rm -rf "$sandir"; mkdir -p "$sandir"
  ASAN_OPTIONS="detect_leaks=1:log_path=$sandir/asan:abort_on_error=0" \
  UBSAN_OPTIONS="print_stacktrace=1:log_path=$sandir/ubsan" \
  ADAPTER_BIN="$root/build-asan/promlua-adapter" ADAPTER_ASAN=1 \
    run asan spec/integration
  if compgen -G "$sandir/*" >/dev/null; then
    echo "sanitizer reports:"; cat "$sandir"/*
    failed=$((failed + 1)); status=1
  fi
fi

# The fuzz smoke (spec/fuzz/run.sh): counts as one test, when the fuzz
# targets are built (make test builds them; ADAPTER_SKIP_FUZZ=1 skips).
if [ -z "${ADAPTER_SKIP_FUZZ:-}" ] && [ -d "$root/build-fuzz/fuzz" ]; then
  echo "== fuzz smoke"
  if spec/fuzz/run.sh smoke; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); status=1
  fi
fi

echo "specs: $passed passed, $failed failed"
exit $status
