//! Every kernel run a few times on small data, so that a JIT which starts code in a quick
//! baseline tier has the optimised code of each ready before real work calls it.
//!
//! V8 first runs a wasm function as Liftoff's quick code and compiles it with TurboFan, in the
//! background, once the function has spent a budget of work; a call already running is not
//! replaced. A prompt's first matmul of each type, one call over the whole matrix, so ran
//! entirely in Liftoff: the first layer of a 64-token Phi-3 prompt took about 330 ms more than
//! the others (qkv 122 ms against 40, gate/up 213 against 73-87, bench/NOTES.md). Here each
//! kernel spends that budget on a matrix of a few kilobytes instead: in Chromium at one thread
//! a 64-token prompt of the Phi-3-shaped file then ran at 11.7-12.2 tok/s against 9.8-11.4,
//! and SmolLM2 Q8_0's 200-token prompt at 368-378 against 347-357, the load no longer.

use half::f16;

use crate::attention::{self, CacheView};
use crate::kquant::{self, KQuant};
use crate::{int4, int8, swiglu};

/// Weight rows and columns of the matrices: whole K-quant super-blocks, whole groups of four.
const ROWS: usize = 16;
const COLS: usize = 512;
/// Activation rows of the prompt-shaped calls; decode-shaped calls take one.
const PROMPT_ROWS: usize = 8;
/// Calls of each kernel and shape: enough to spend V8's budget (1.8 M, in bytes of code run).
const CALLS: usize = 8;

/// Runs each matmul (Q8_0, Q4_1, Q4_K, Q5_K, Q6_K; one activation row and several), the
/// attention over an f32 and an f16 cache, the causal softmax and the gated MLP's activation.
/// Takes a few milliseconds; the results are dropped.
pub fn warm_up() {
    const FITS: &str = "the warm-up's sizes fit every kernel";
    let int8 = int8::pack_q8_0(&zeros(int8::Q8_0_BLOCK_BYTES, int8::BLOCK), ROWS, COLS);
    let int8 = int8.expect(FITS);
    let int4 = int4::pack_q4_1(&zeros(int4::Q4_1_BLOCK_BYTES, int4::BLOCK), ROWS, COLS);
    let int4 = int4.expect(FITS);
    let kinds = [KQuant::Q4K, KQuant::Q5K, KQuant::Q6K];
    let kquants = kinds.map(|kind| zeros(kind.block_bytes(), kquant::SUPER));
    for m in [1, PROMPT_ROWS] {
        let x: Vec<f32> = (0..m * COLS)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25)
            .collect();
        for _ in 0..CALLS {
            int8::matmul(&int8, ROWS, COLS, &x).expect(FITS);
            int4::matmul(&int4, ROWS, COLS, &x).expect(FITS);
            for (kind, bytes) in kinds.iter().zip(&kquants) {
                kquant::matmul(*kind, bytes, ROWS, COLS, &x).expect(FITS);
            }
        }
    }
    let (kv_heads, heads, n, d) = (2, 4, 64, 64);
    let q = vec![0.5f32; heads * d];
    let wide = vec![0.25f32; kv_heads * n * d];
    let narrow = vec![f16::from_f32(0.25); kv_heads * n * d];
    let mut scores = vec![0.5f32; heads * n];
    let gate_up = vec![0.5f32; PROMPT_ROWS * 2 * COLS];
    for _ in 0..CALLS {
        let (wide, narrow) = (heads_of(&wide, n * d), heads_of(&narrow, n * d));
        attention::one_query(&q, wide, wide, kv_heads, n, d);
        attention::one_query(&q, narrow, narrow, kv_heads, n, d);
        attention::causal_softmax(&mut scores, n, heads, 0.125);
        swiglu::swiglu_stacked(&gate_up, COLS);
    }
}

/// `data` as a cache of heads `head_stride` values apart.
fn heads_of<T>(data: &[T], head_stride: usize) -> CacheView<'_, T> {
    CacheView { data, head_stride }
}

/// A `[ROWS, COLS]` matrix of zeros in blocks of `block` values stored in `block_bytes`.
fn zeros(block_bytes: usize, block: usize) -> Vec<u8> {
    vec![0; ROWS * COLS / block * block_bytes]
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_kernel_takes_the_warm_up_s_sizes() {
        // A size that stopped fitting a kernel panics here rather than in a load.
        super::warm_up();
    }
}
