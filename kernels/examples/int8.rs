//! Times the Q8_0 matmul on SmolLM2-135M's matrices natively, one thread: a decode step's one
//! activation row and a prompt's 64, each matrix streamed from copies that together are about
//! the model's size, as a decode step reads its weights (held in a large L3, or not). Prints
//! the best of several passes per matrix, the kernel's rate in GB/s of packed weights, and the
//! rate at which `int8::pack_q8_0` packs the file's bytes at load.
//!
//! `cargo run --release -p mimir-kernels --example int8 [-- --passes N]`

use std::time::Instant;

use mimir_kernels::int8::{self, BLOCK, Q8_0_BLOCK_BYTES};

/// SmolLM2-135M's matrices as the engine multiplies them: q, k and v stacked, o, gate and up
/// stacked, down, and the tied output head.
const MATRICES: [(&str, usize, usize); 5] = [
    ("qkv", 960, 576),
    ("o", 576, 576),
    ("gate+up", 3072, 576),
    ("down", 576, 1536),
    ("head", 49152, 576),
];

/// Bytes of Q8_0 each matrix is streamed from, in copies: about SmolLM2's.
const STREAMED: usize = 144 << 20;

/// GGUF Q8_0 bytes of a `[rows, cols]` matrix: pseudo-random quants across the whole i8 range
/// and scales of about 1/64, as a trained model's are.
fn q8_0(rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    let mut bytes = Vec::with_capacity(rows * cols / BLOCK * Q8_0_BLOCK_BYTES);
    for _ in 0..rows * cols / BLOCK {
        bytes.extend(half::f16::from_f32(1.0 / 64.0).to_le_bytes());
        bytes.extend((0..BLOCK).map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 23) as u8
        }));
    }
    bytes
}

fn main() {
    let passes = std::env::args()
        .skip_while(|a| a != "--passes")
        .nth(1)
        .map_or(5, |n| n.parse().expect("--passes takes a number"));
    println!("instructions: {}", mimir_kernels::instructions());
    println!("matrix   [rows, cols]  rows of x  ms (best of {passes})  GB/s of weights");
    for (name, rows, cols) in MATRICES {
        let file_bytes = rows * cols / BLOCK * Q8_0_BLOCK_BYTES;
        let mut packing = f64::INFINITY;
        let copies: Vec<Vec<u8>> = (0..STREAMED.div_ceil(file_bytes).max(2))
            .map(|c| {
                let bytes = q8_0(rows, cols, c as u32 + 1);
                let start = Instant::now();
                let packed = int8::pack_q8_0(&bytes, rows, cols).expect("whole blocks");
                packing = packing.min(start.elapsed().as_secs_f64());
                packed
            })
            .collect();
        let bytes = copies[0].len();
        println!(
            "{name:<8} [{rows:>5}, {cols:>4}]  pack      {:>9.3}  {:>8.1}",
            packing * 1e3,
            file_bytes as f64 / packing / 1e9,
        );
        for m in [1, 64] {
            let x: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 31) as f32 * 0.37).sin() * (1.0 + (i % 7) as f32))
                .collect();
            let mut best = f64::INFINITY;
            let mut sink = 0f32;
            // A prompt reads each matrix once per pass; a decode step, every copy.
            let streamed = if m == 1 { copies.len() } else { 1 };
            for _ in 0..passes {
                let start = Instant::now();
                for w in &copies[..streamed] {
                    sink += int8::matmul(w, rows, cols, &x).unwrap()[0];
                }
                best = best.min(start.elapsed().as_secs_f64() * 1e3 / streamed as f64);
            }
            println!(
                "{name:<8} [{rows:>5}, {cols:>4}]  {m:>9}  {best:>9.3}  {:>8.1}    (checksum {sink:.1})",
                bytes as f64 / best / 1e6,
            );
        }
    }
}
