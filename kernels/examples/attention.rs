//! Times a decode step's attention natively, one thread, on SmolLM2-135M's shapes (30 layers,
//! 9 query heads over 3 kv heads of 64 values), over caches of several lengths, in f32 and f16:
//! each layer's cache is its own, as in the model. Prints the best of several passes per step,
//! and the rate in GB/s of keys and values read.
//!
//! `cargo run --release -p mimir-kernels --example attention [-- --passes N]`

use std::time::Instant;

use half::f16;
use mimir_kernels::attention::{one_query, CacheValue, CacheView};

const LAYERS: usize = 30;
const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const D: usize = 64;

/// The best of `passes` decode steps' attention over `n` positions of every layer's cache, in
/// seconds.
fn time_steps<T: CacheValue>(caches: &[(Vec<T>, Vec<T>)], n: usize, passes: usize) -> f64 {
    let q: Vec<f32> = (0..HEADS * D).map(|i| (i as f32 * 0.37).sin()).collect();
    let stride = caches[0].0.len() / KV_HEADS;
    let mut best = f64::INFINITY;
    let mut check = 0.0;
    for _ in 0..passes {
        let start = Instant::now();
        for (keys, values) in caches {
            let keys = CacheView {
                data: keys,
                head_stride: stride,
            };
            let values = CacheView {
                data: values,
                head_stride: stride,
            };
            check += one_query(&q, keys, values, KV_HEADS, n, D)[0];
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    assert!(check.is_finite());
    best
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut passes = 20;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--passes", Some(n)) => passes = n,
            _ => {
                eprintln!("usage: attention [--passes N]");
                std::process::exit(2);
            }
        }
    }
    let capacity = 2048;
    let values = KV_HEADS * capacity * D;
    let f32_caches: Vec<(Vec<f32>, Vec<f32>)> = (0..LAYERS)
        .map(|l| {
            let fill = |seed: usize| {
                (0..values)
                    .map(|i| ((i * 7 + seed) as f32 * 0.013).cos() * 0.5)
                    .collect()
            };
            (fill(2 * l), fill(2 * l + 1))
        })
        .collect();
    let f16_caches: Vec<(Vec<f16>, Vec<f16>)> = f32_caches
        .iter()
        .map(|(k, v)| {
            let narrow = |x: &Vec<f32>| x.iter().map(|&x| f16::from_f32(x)).collect();
            (narrow(k), narrow(v))
        })
        .collect();
    println!(
        "attention of one query, {LAYERS} layers of {HEADS} heads over {KV_HEADS} kv heads of \
         {D}, {}; best of {passes}",
        mimir_kernels::instructions()
    );
    println!(
        "{:>9} {:>12} {:>10} {:>12} {:>10}",
        "positions", "f32 µs/step", "f32 GB/s", "f16 µs/step", "f16 GB/s"
    );
    for n in [64, 264, 1024, 2048] {
        let read = |bytes: usize| (LAYERS * 2 * KV_HEADS * n * D * bytes) as f64 / 1e9;
        let wide = time_steps(&f32_caches, n, passes);
        let narrow = time_steps(&f16_caches, n, passes);
        println!(
            "{n:>9} {:>12.0} {:>10.1} {:>12.0} {:>10.1}",
            wide * 1e6,
            read(4) / wide,
            narrow * 1e6,
            read(2) / narrow
        );
    }
}
