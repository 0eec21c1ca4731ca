# The two commands of the README: `make demo` and `make test`.
# Both install what is missing (scripts/deps.sh, apt-get only), then build.
JOBS ?= $(shell nproc)

.PHONY: all build build-asan build-fuzz fuzz deps test test-normal test-asan demo clean

all: build

deps:
	@scripts/deps.sh test

build: 
	@scripts/deps.sh build
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

build-asan:
	@scripts/deps.sh build
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DADAPTER_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

# libFuzzer targets (spec/fuzz/targets), clang with ASan+UBSan.
build-fuzz:
	@scripts/deps.sh test
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DADAPTER_FUZZ=ON -DADAPTER_WERROR=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz

# FUZZ_SECONDS (default 60) of fuzzing per target; FUZZ_TARGETS="a b" for
# some only. Crash inputs land in spec/tmp/fuzz/<target>/.
fuzz: build-fuzz
	@spec/fuzz/run.sh fuzz

# Every spec against the normal build, then the specs that run the binary
# against the ASan+UBSan build (a sanitizer report fails the run), then the
# fuzz smoke: the committed corpora once and ~20 s of fuzzing.
test: deps build build-asan build-fuzz
	@scripts/run-specs.sh

test-normal: deps build
	@ADAPTER_SKIP_ASAN=1 scripts/run-specs.sh

demo:
	@scripts/deps.sh demo
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh

clean:
	rm -rf build build-asan build-fuzz
