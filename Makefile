# Mimir: `make serve` runs the app, `make test` runs every check. Both install what is missing.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

APP_PORT ?= 8080
HUB_PORT ?= 8081
# The local hub the browser tests (`tests/web_loading.rs`) download from.
TEST_HUB_PORT ?= 8091
WASM := --target wasm32-unknown-unknown
# How the hub's binary (`target/debug/mimir-train`) is built. Tests build it as `cargo test`
# does (dev-dependencies unify features differently), so it is not compiled twice.
TRAIN_BUILD ?= cargo build -p mimir-train
TEST_TRAIN_BUILD := cargo test --workspace --no-run --quiet
WEB_TESTS := $(basename $(notdir $(wildcard tests/web_*.rs)))
export CHROMEDRIVER ?= /usr/bin/chromedriver
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER ?= wasm-bindgen-test-runner
# The runner gives a whole test file 20 s by default; the loading tests take about that alone.
export WASM_BINDGEN_TEST_TIMEOUT ?= 120
# Chromium's profiles go here, not to /tmp: chromedriver leaves them behind when it is stopped
# rather than quit (up to 170 MB each with a cached model), so each browser target empties it.
BROWSER_TMP := $(CURDIR)/target/browser-tmp
FRESH_BROWSER_TMP := rm -rf $(BROWSER_TMP) && mkdir -p $(BROWSER_TMP) && export TMPDIR=$(BROWSER_TMP)

.PHONY: setup setup-test serve test fmt-check clippy test-native test-wasm test-e2e test-serve dist \
	space test-space audit bench clean

setup:
	MIMIR_TRAIN_BUILD="$(TRAIN_BUILD)" scripts/setup.sh

setup-test:
	MIMIR_TRAIN_BUILD="$(TEST_TRAIN_BUILD)" scripts/setup.sh --test

## Serve the app on http://127.0.0.1:$(APP_PORT) with the local hub on $(HUB_PORT).
serve: setup
	$(TRAIN_BUILD)
	target/debug/mimir-train hub-data --root hub-data
	# trunk refuses to start when a folder Trunk.toml's [watch] ignores does not exist.
	mkdir -p screenshots space
	target/debug/mimir-train hub --root hub-data --port $(HUB_PORT) & hub=$$!; \
	trap 'kill $$hub 2>/dev/null' EXIT INT TERM; \
	trunk serve --port $(APP_PORT)

## Every check: formatting, lints, native tests, browser tests, end-to-end.
test: setup-test fmt-check clippy test-native test-wasm test-e2e test-space test-serve
	@echo "make test: all checks passed"

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p mimir --lib --bins $(foreach t,$(WEB_TESTS),--test $(t)) $(WASM) -- -D warnings
	cargo clippy -p mimir-kernels --lib $(WASM) -- -D warnings
	cargo clippy -p mimir-kernels --lib $(WASM) --features relaxed-simd -- -D warnings
	scripts/build-threads.sh clippy

test-native:
	cargo test --workspace

## Browser tests in headless Chromium, with a local hub on $(TEST_HUB_PORT) for the loading tests.
test-wasm:
	$(TEST_TRAIN_BUILD)
	target/debug/mimir-train hub-data --root hub-data
	for arch in phi3 llama; do \
	  dir=hub-data/mimir-check/tiny-$$arch; \
	  target/debug/mimir-train tiny --arch $$arch --out $$dir; \
	  target/debug/mimir-train logits --model $$dir/model-f32.gguf --adapter $$dir/adapter \
	    --tokens 1,15043,3186,29892,920 > $$dir/logits.json.part; \
	  mv $$dir/logits.json.part $$dir/logits.json; \
	done
	target/debug/mimir-train hub --root hub-data --port $(TEST_HUB_PORT) & hub=$$!; \
	trap 'kill $$hub 2>/dev/null' EXIT INT TERM; \
	export MIMIR_TEST_HUB=http://127.0.0.1:$(TEST_HUB_PORT); \
	$(FRESH_BROWSER_TMP); \
	cargo test -p mimir-kernels $(WASM) && \
	cargo test -p mimir-kernels $(WASM) --features relaxed-simd && \
	cargo test -p mimir $(WASM) --lib && \
	$(foreach t,$(WEB_TESTS),cargo test -p mimir $(WASM) --test $(t) &&) true

dist:
	trunk build

test-e2e: dist
	$(TEST_TRAIN_BUILD)
	target/debug/mimir-train hub-data --root hub-data
	$(FRESH_BROWSER_TMP); cargo test -p mimir --test e2e_browser -- --test-threads 1

## The Hugging Face Space in space/: a release build, the Space's README and its LFS rules.
SPACE_DIR ?= space
SPACE_PROFILE ?= --release
space: setup
	trunk build $(SPACE_PROFILE) --dist $(SPACE_DIR)
	cp deploy/space/README.md deploy/space/.gitattributes $(SPACE_DIR)/

## The Space bundle served with its README's headers and its CSP; the deploy script's checks.
## The test bundle is `make space` with the dev profile, into target/space-test: the same
## files, from the wasm the browser tests already built (a release build takes ~19 min here).
test-space:
	$(MAKE) space SPACE_DIR=target/space-test SPACE_PROFILE= TRAIN_BUILD="$(TEST_TRAIN_BUILD)"
	$(TEST_TRAIN_BUILD)
	$(FRESH_BROWSER_TMP); \
	  MIMIR_SPACE_DIR=target/space-test cargo test -p mimir --test e2e_space -- --test-threads 1
	scripts/test-deploy-space.sh

## Dependency review with cargo-deny (deny.toml): licenses, bans and sources offline; then
## advisories, which fail the target when found but are skipped with a warning when the
## RustSec database (on GitHub) cannot be fetched.
audit:
	command -v cargo-deny >/dev/null || CARGO_PROFILE_RELEASE_LTO=false \
	  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
	  CARGO_PROFILE_RELEASE_DEBUG=0 cargo install --locked cargo-deny@0.20.2
	cargo deny --offline --locked check licenses bans sources
	if cargo deny fetch db; then \
	  cargo deny --offline --locked check advisories; \
	else \
	  echo "make audit: advisories NOT checked: the RustSec database could not be fetched" >&2; \
	fi

## `make serve` answers with the app page and the hub answers on its port.
test-serve:
	TRAIN_BUILD="$(TEST_TRAIN_BUILD)" scripts/check-serve.sh $(APP_PORT) $(HUB_PORT)

## Speed against wllama, llama.cpp and candle (not part of `make test`; under 30 minutes):
## writes bench/results.json and bench/README.md.
bench: setup-test
	python3 bench/run.py

clean:
	cargo clean
	rm -rf dist space screenshots
