#!/usr/bin/env bash
# deps.sh: install every Debian package the build, the tests and the demo
# need, and nothing that is already there. Idempotent; apt-get only.
# Usage: scripts/deps.sh [build|test|demo|bench|all]   (default: all)
set -euo pipefail
what=${1:-all}

build_pkgs="build-essential cmake pkg-config luajit libluajit-5.1-dev
  libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libssl-dev
  libpcre2-dev libyaml-dev libyajl-dev lua-cjson openssl"
# prometheus and nginx-light run the demo stack, which the end-to-end spec
# (spec/integration/e2e_prometheus_spec.lua) runs too.
# clang and its runtime libraries: the libFuzzer smoke (spec/fuzz).
# kubectl: Debian ships it as kubernetes-client (kubectl 1.20, kustomize
# v2.0.3; deploy/ and the specs work with it); a kubectl already on PATH
# (a newer one from Kubernetes' own apt repository, say) is used instead.
test_pkgs="lua-busted lua-socket curl kubectl prometheus nginx-light
  clang libclang-rt-14-dev"
demo_pkgs=""
# bench/*.sh: nginx as the static fake Prometheus, wrk as the load generator
# (perf, for profiles, comes with linux-perf; optional).
bench_pkgs="nginx-light wrk"

case "$what" in
  build) want="$build_pkgs" ;;
  test)  want="$build_pkgs $test_pkgs" ;;
  demo)  want="$build_pkgs $test_pkgs $demo_pkgs" ;;
  bench) want="$build_pkgs $test_pkgs $bench_pkgs" ;;
  all)   want="$build_pkgs $test_pkgs $demo_pkgs $bench_pkgs" ;;
  *) echo "usage: $0 [build|test|demo|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  # "kubectl" stands for any kubectl on PATH, else Debian's package of it
  if [ "$p" = kubectl ]; then
    command -v kubectl >/dev/null 2>&1 && continue
    p=kubernetes-client
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
