//! Times the K-quant matmul on the Phi-3-mini file's matrices natively, one thread: a decode
//! step's one activation row and a prompt's 64, each matrix streamed from copies that
//! together outgrow the CPU's caches, as a decode step reads its weights. Prints the best of
//! several passes per matrix, and the kernel's rate in GB/s of weights; and the rate at which
//! `kquant::pack` re-lays each kind at load.
//!
//! `cargo run --release -p mimir-kernels --example kquant [-- --passes N]`

use std::time::Instant;

use mimir_kernels::kquant::{self, KQuant};

/// The Phi-3-mini Q4_K_M file's matrix kinds and shapes (q/k/v, gate/up, down).
const MATRICES: [(KQuant, usize, usize); 4] = [
    (KQuant::Q5K, 9216, 3072),
    (KQuant::Q4K, 16384, 3072),
    (KQuant::Q4K, 3072, 8192),
    (KQuant::Q6K, 3072, 8192),
];

/// Bytes of weights each matrix is streamed from, in copies.
const STREAMED: usize = 192 << 20;

/// A `[rows, cols]` matrix of `kind` in GGUF's order from a deterministic byte pattern, every
/// `d` a subnormal f16 (as the Phi-3-shaped file's are) and every `dmin` a small normal one.
fn gguf_matrix(kind: KQuant, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2654435761) | 1;
    let mut bytes: Vec<u8> = (0..kind.matrix_bytes(rows, cols).expect("whole super-blocks"))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let (d, dmin) = (0x0180u16.to_le_bytes(), 0x2400u16.to_le_bytes());
    for block in bytes.chunks_exact_mut(kind.block_bytes()) {
        match kind {
            KQuant::Q6K => block[208..210].copy_from_slice(&d),
            _ => {
                block[0..2].copy_from_slice(&d);
                block[2..4].copy_from_slice(&dmin);
            }
        }
    }
    bytes
}

/// [`gguf_matrix`] packed, and the seconds `kquant::pack` took.
fn matrix(kind: KQuant, rows: usize, cols: usize, seed: u32) -> (Vec<u8>, f64) {
    let mut bytes = gguf_matrix(kind, rows, cols, seed);
    let start = Instant::now();
    kquant::pack(kind, &mut bytes, rows, cols).expect("a whole matrix");
    (bytes, start.elapsed().as_secs_f64())
}

fn main() {
    let passes = std::env::args()
        .skip_while(|a| a != "--passes")
        .nth(1)
        .map_or(5, |n| n.parse().expect("--passes takes a number"));
    println!("kind  [rows, cols]   rows of x  ms (best of {passes})  GB/s of weights");
    for (kind, rows, cols) in MATRICES {
        let bytes = kind.matrix_bytes(rows, cols).unwrap();
        let (copies, packing): (Vec<Vec<u8>>, Vec<f64>) = (0..STREAMED.div_ceil(bytes).max(2))
            .map(|c| matrix(kind, rows, cols, c as u32 + 1))
            .unzip();
        let packing = packing.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{:<5} [{rows:>5}, {cols:>4}]  pack      {:>9.3}  {:>8.1}",
            format!("{kind:?}"),
            packing * 1e3,
            bytes as f64 / packing / 1e9,
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
                    sink += kquant::matmul(kind, w, rows, cols, &x).unwrap()[0];
                }
                best = best.min(start.elapsed().as_secs_f64() * 1e3 / streamed as f64);
            }
            println!(
                "{:<5} [{rows:>5}, {cols:>4}]  {m:>9}  {best:>9.3}  {:>8.1}    (checksum {sink:.1})",
                format!("{kind:?}"),
                bytes as f64 / best / 1e6,
            );
        }
    }
}
