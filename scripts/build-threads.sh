#!/usr/bin/env bash
# The engine worker with wasm threads (`worker-threads`), written next to trunk's other
# workers: trunk runs this after each build (Trunk.toml's post_build hook), since it cannot
# build it itself. Shared memory needs std rebuilt with atomics, so this build uses a pinned
# nightly with rust-src (scripts/setup.sh installs it) and a target folder of its own.
#
# It is the `worker-relaxed` binary with `+atomics`: std's Mutex and Condvar wait with
# `memory.atomic.wait32`, and the kernels' pool (kernels/src/pool.rs) runs its workers in
# Web Workers (src/worker/threads.rs, web/pool_worker.js). The memory may grow to 4 GiB, as
# the single-thread builds' does.
#   scripts/build-threads.sh          build (trunk's hook: TRUNK_STAGING_DIR, TRUNK_PROFILE)
#   scripts/build-threads.sh clippy   lint the code only this build compiles
set -euo pipefail
cd "$(dirname "$0")/.."

NIGHTLY=$(cat scripts/nightly-toolchain)
RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128,+relaxed-simd"
# Stable Rust's symbol names: the nightly's default (v0) spells out every generic with its
# crate's hash, which makes the wasm's name section 2.6 times larger (a dev build passed the
# Space's 10 MiB limit on files outside Git LFS).
RUSTFLAGS+=" -Z unstable-options -C symbol-mangling-version=legacy"
# A shared memory the page's glue creates and every thread imports, and the thread-local
# storage symbols wasm-bindgen sets up each thread with.
for arg in --shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls \
  --export=__tls_size --export=__tls_align --export=__tls_base; do
  RUSTFLAGS+=" -C link-arg=$arg"
done
export RUSTFLAGS
threads_cargo() {
  cargo "+$NIGHTLY" "$1" --quiet --features web,relaxed-simd --target wasm32-unknown-unknown \
    -Z build-std=panic_abort,std --target-dir target/threads "${@:2}"
}

if [ "${1:-}" = clippy ]; then
  threads_cargo clippy -p mimir --lib --bin worker-relaxed -- -D warnings
  exit
fi

out=${TRUNK_STAGING_DIR:?run by trunk, which sets TRUNK_STAGING_DIR}
profile=${TRUNK_PROFILE:-debug}
release=()
if [ "$profile" = release ]; then release=(--release); fi
threads_cargo build "${release[@]}" --bin worker-relaxed

wasm-bindgen --target no-modules --no-typescript --out-dir "$out" --out-name worker-threads \
  "target/threads/wasm32-unknown-unknown/$profile/worker-relaxed.wasm"
# The loader, as trunk writes one for its workers (`data-loader-shim`).
cat > "$out/worker-threads_loader.js" <<'EOF'
importScripts("./worker-threads.js");
wasm_bindgen({ module_or_path: "./worker-threads_bg.wasm" });
EOF
