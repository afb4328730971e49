//! Mimir's numeric inner loops, over plain slices: the int8 matmul of Q8_0 weights and the
//! attention of one query over the KV cache, with SIMD128 code on wasm32 and portable loops
//! elsewhere (natively they are tested; the engine uses them in wasm32, where candle's
//! kernels are the slower ones).
//!
//! They live in a crate of their own so that every build optimises them: in a dev build the
//! workspace's own crates are compiled at opt-level 0, where these loops are 10 to 50 times
//! slower.

pub mod attention;
pub mod int8;
