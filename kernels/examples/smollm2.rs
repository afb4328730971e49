//! Times the Q8_0 and Q4_1 matmuls on SmolLM2-135M's matrices natively, one thread: a decode
//! step's one activation row and a prompt's 64, each matrix streamed from copies that together
//! are about the model's size, as a decode step reads its weights (held in a large L3, or not).
//! Prints the best of several passes per matrix, the kernel's rate in GB/s of packed weights,
//! and the rate at which the file's bytes are packed at load.
//!
//! `cargo run --release -p mimir-kernels --example smollm2 [-- --passes N]`

use std::time::Instant;

use mimir_kernels::int4::{self, Q4_1_BLOCK_BYTES};
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

/// Bytes of the file each matrix is streamed from, in copies: about SmolLM2's Q8_0 file.
const STREAMED: usize = 144 << 20;

/// A weight type the example times.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Q8_0,
    Q4_1,
}

impl Kind {
    /// Bytes of one 32-value block in a GGUF file.
    fn block_bytes(self) -> usize {
        match self {
            Kind::Q8_0 => Q8_0_BLOCK_BYTES,
            Kind::Q4_1 => Q4_1_BLOCK_BYTES,
        }
    }

    /// GGUF bytes of a `[rows, cols]` matrix: pseudo-random quants over their whole range, a
    /// scale of 1/64 (and for Q4_1 a minimum of -0.1), about a trained model's.
    fn gguf(self, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
        let mut bytes = Vec::with_capacity(rows * cols / BLOCK * self.block_bytes());
        let header = match self {
            Kind::Q8_0 => vec![half::f16::from_f32(1.0 / 64.0)],
            Kind::Q4_1 => vec![half::f16::from_f32(1.0 / 64.0), half::f16::from_f32(-0.1)],
        };
        for _ in 0..rows * cols / BLOCK {
            bytes.extend(header.iter().flat_map(|h| h.to_le_bytes()));
            let quants = self.block_bytes() - 2 * header.len();
            bytes.extend((0..quants).map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 23) as u8
            }));
        }
        bytes
    }

    fn pack(self, bytes: &[u8], rows: usize, cols: usize) -> Vec<u8> {
        match self {
            Kind::Q8_0 => int8::pack_q8_0(bytes, rows, cols).expect("whole blocks"),
            Kind::Q4_1 => int4::pack_q4_1(bytes, rows, cols).expect("whole blocks"),
        }
    }

    fn matmul(self, packed: &[u8], rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
        match self {
            Kind::Q8_0 => int8::matmul(packed, rows, cols, x).expect("fitting shapes"),
            Kind::Q4_1 => int4::matmul(packed, rows, cols, x).expect("fitting shapes"),
        }
    }
}

fn main() {
    let passes = std::env::args()
        .skip_while(|a| a != "--passes")
        .nth(1)
        .map_or(5, |n| n.parse().expect("--passes takes a number"));
    println!("instructions: {}", mimir_kernels::instructions());
    for kind in [Kind::Q8_0, Kind::Q4_1] {
        time(kind, passes);
    }
}

/// Prints `kind`'s packing and matmul times for each matrix.
fn time(kind: Kind, passes: usize) {
    println!("{kind:?}: matrix   [rows, cols]  rows of x  ms (best of {passes})  GB/s of weights");
    for (name, rows, cols) in MATRICES {
        let file_bytes = rows * cols / BLOCK * kind.block_bytes();
        let mut packing = f64::INFINITY;
        let copies: Vec<Vec<u8>> = (0..STREAMED.div_ceil(file_bytes).max(2))
            .map(|c| {
                let bytes = kind.gguf(rows, cols, c as u32 + 1);
                let start = Instant::now();
                let packed = kind.pack(&bytes, rows, cols);
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
                    sink += kind.matmul(w, rows, cols, &x)[0];
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
