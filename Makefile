# The README's two commands:
#   make run    install what is missing, build (Release), start the suite in the foreground
#   make test   install what is missing, build with ASan+UBSan and -Werror, run every test
# Everything else here is a convenience for developers.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
STATE ?= var
RELEASE_DIR := build/release
TEST_DIR := build/test
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 30

.PHONY: run test deps build build-test unit fuzz fuzz-smoke clean format

deps:
	@bash contrib/install-deps.sh

build: deps
	@cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=Release -DYUBIN_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE_DIR) -j$(JOBS) -- --no-print-directory

run: build
	@exec $(RELEASE_DIR)/cli/yubin run --state $(STATE)

build-test: deps
	@cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DYUBIN_SANITIZE=ON -DYUBIN_WERROR=ON >/dev/null
	@cmake --build $(TEST_DIR) -j$(JOBS) -- --no-print-directory

unit: build-test
	@cd $(TEST_DIR) && ctest --output-on-failure -j$(JOBS)

# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS.
fuzz: deps
	@cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DYUBIN_FUZZ=ON -DYUBIN_BUILD_TESTS=ON \
	    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	@cmake --build $(FUZZ_DIR) -j$(JOBS) --target yubin_fuzzers -- --no-print-directory
	@bash tests/fuzz/run_fuzzers.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# Fuzzers first so that ctest's summary is the last thing `make test` prints.
test: fuzz unit

clean:
	rm -rf build

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i
