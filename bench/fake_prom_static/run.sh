#!/bin/sh
# Checks for src/http_client.c and src/prom.c against a recording fake
# Prometheus (fake_prom.py), plus the 1,000,000-series streaming benchmark.
# Everything is built and run in /tmp/ptest (the drivers use that path).
# Usage: bench/fake_prom_static/run.sh [--no-big]   (from the repo root)
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/fake_prom_static
W=/tmp/ptest
mkdir -p $W/pki
cd $W
if [ ! -f pki/ca.crt ]; then
  (cd pki
   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=testca -days 2
   openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=prom.example
   printf 'subjectAltName=DNS:prom.example\n' > ext
   openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext
   openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj /CN=client
   openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cli.crt -days 2
   openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -subj /CN=otherca -days 2
  ) 2>/dev/null
fi
[ "$1" = --no-big ] || [ -f big.json ] || python3 $HERE/gen_series.py 10000 100 big.json
: > req.log
python3 $HERE/fake_prom.py 18091 $W/req.log $W/big.json 2>>$W/fake.err & P1=$!
TLS_CERT=pki/srv.crt TLS_KEY=pki/srv.key TLS_CLIENT_CA=pki/ca.crt \
  python3 $HERE/fake_prom.py 18092 $W/req.log 2>>$W/fake.err & P2=$!
trap 'kill $P1 $P2' EXIT
sleep 1
CF="-std=c11 -g -Wall -Wextra -Werror -Wno-unused-parameter -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$ROOT/src $(pkg-config --cflags libcurl yajl)"
LIBS="$(pkg-config --libs libcurl yajl) -lpthread -lm"
SRC="$ROOT/src/prom.c $ROOT/src/http_client.c $ROOT/src/buf.c $ROOT/src/log.c $ROOT/src/metrics.c"
SAN="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
gcc $CF $SAN -o prom_check $HERE/prom_check.c $SRC $LIBS
gcc $CF $SAN -o http_check $HERE/http_check.c $SRC $LIBS
gcc $CF -O1 -fsanitize=thread -o thread_check $HERE/thread_check.c $SRC $LIBS
gcc $CF -O2 -o prom_bench $HERE/prom_check.c $SRC $LIBS
./prom_check 18091 $W/req.log | grep -v '^# {'
./http_check
./thread_check
if [ "$1" != --no-big ]; then
  /usr/bin/time -v ./prom_bench 18091 $W/req.log 1000000 2>&1 |
    grep -E '^# big|checks passed|Maximum resident|Elapsed'
fi
