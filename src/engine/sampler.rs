//! Token sampling from raw logits.
//!
//! [`Sampler::sample`] applies, in the order Hugging Face transformers uses:
//!
//! 1. the repetition penalty (HF semantics) over the distinct tokens of the
//!    last `penalty_last_n` history tokens,
//! 2. frequency and presence penalties (OpenAI semantics) over the same window,
//! 3. greedy argmax if `temperature == 0` (ties go to the lowest id), otherwise
//! 4. temperature, top-k, softmax, top-p (nucleus), renormalisation and a draw
//!    from a seeded pseudo-random generator.
//!
//! Determinism: the generator is an inline SplitMix64 and the softmax uses a
//! software `exp` built only from IEEE-754 additions, multiplications and
//! divisions, so the same seed and the same inputs give the same tokens on
//! every platform, native and wasm32 alike (platform `libm`s may differ in the
//! last bit of `exp`, which could otherwise flip a draw).
//!
//! Masking: a logit of `-inf` means "never pick this token" and is accepted;
//! `NaN` and `+inf` are errors, as are an empty slice and a slice where every
//! logit is `-inf`.

use std::cmp::Ordering;

use thiserror::Error;

use crate::engine::generation_config::GenerationConfig;

/// Why [`Sampler::sample`] could not produce a token.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SampleError {
    /// The logits slice was empty.
    #[error("cannot sample from an empty logits slice")]
    EmptyLogits,
    /// A logit was `NaN` or `+inf` (the model produced garbage).
    #[error("logits[{index}] is {value}; logits must be finite (or -inf to mask a token)")]
    NonFiniteLogit {
        /// Index (token id) of the first offending logit.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// Every logit was `-inf`, so no token can be chosen.
    #[error("all {len} logits are -inf (every token is masked)")]
    AllMasked {
        /// Length of the logits slice.
        len: usize,
    },
}

/// SplitMix64 pseudo-random generator: tiny, fast, and bit-identical on every
/// platform.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `exp(x)` computed with basic IEEE-754 operations only, so the result is
/// bit-identical on every platform. Accurate to about 1 ulp. Results below
/// 2^-1022 are flushed to 0, which is irrelevant for sampling weights.
fn det_exp(x: f64) -> f64 {
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // fdlibm ln2_hi
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // fdlibm ln2_lo
    if x.is_nan() {
        return x;
    }
    if x < -708.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    // x = k·ln2 + r with |r| ≤ ln2/2; the floor of a value is exact everywhere.
    let k = (x * std::f64::consts::LOG2_E + 0.5).floor();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of exp(r) to r^13/13!: truncation error < 1e-17 relative.
    let mut p = 1.0 / 6_227_020_800.0; // 1/13!
    for d in [
        479_001_600.0, // 12!
        39_916_800.0,  // 11!
        3_628_800.0,   // 10!
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        p = p * r + 1.0 / d;
    }
    // k is in [-1021, 1023] here, so 2^k is a normal number.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    p * scale
}

/// Total order used for ranking candidates: higher logit first, then lower
/// id. Never sees NaN (rejected up front).
fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit
        .partial_cmp(&a.logit)
        .unwrap_or(Ordering::Equal)
        .then(a.id.cmp(&b.id))
}

/// Length of the shortest prefix of `weights` whose sum is at least
/// `threshold`, or `None` if the whole sequence falls short.
fn prefix_reaching(weights: impl Iterator<Item = f64>, threshold: f64) -> Option<usize> {
    let mut cumulative = 0.0;
    for (i, w) in weights.enumerate() {
        cumulative += w;
        if cumulative >= threshold {
            return Some(i + 1);
        }
    }
    None
}

/// Number of leading entries of `weights` (sorted by decreasing weight, not
/// necessarily normalised) that form the smallest set whose probability mass
/// is at least `top_p`; always ≥ 1 for a non-empty slice.
fn nucleus_len(weights: &[f64], top_p: f32) -> usize {
    let total: f64 = weights.iter().sum();
    prefix_reaching(weights.iter().copied(), f64::from(top_p) * total).unwrap_or(weights.len())
}

/// Keeps, in `rank` order, the shortest prefix of the best candidates whose
/// weights sum to at least `threshold` (all of them if none does), without
/// sorting the whole slice: growing prefixes (top 64, 256, …) are selected and
/// sorted until one holds enough mass. The top-m prefix under `rank` is the
/// same whatever the selection algorithm, so the result is deterministic.
fn nucleus_select(candidates: &mut Vec<Candidate>, weight: impl Fn(f32) -> f64, threshold: f64) {
    let n = candidates.len();
    let mut m = n.min(64);
    let keep = loop {
        if m < n {
            candidates.select_nth_unstable_by(m - 1, rank);
        }
        candidates[..m].sort_unstable_by(rank);
        let prefix = candidates[..m].iter().map(|c| weight(c.logit));
        match prefix_reaching(prefix, threshold) {
            Some(keep) => break keep,
            None if m == n => break n,
            None => m = n.min(m.saturating_mul(4)),
        }
    };
    candidates.truncate(keep);
}

/// Clamps a penalised value back into the finite range so extreme penalties
/// cannot turn a finite logit into `±inf`.
fn saturate(x: f32) -> f32 {
    x.clamp(-f32::MAX, f32::MAX)
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: u32,
    logit: f32,
}

/// Seeded token sampler built from a [`GenerationConfig`].
///
/// Keeps its scratch buffers between calls, so sampling allocates nothing
/// after the first token.
#[derive(Debug, Clone)]
pub struct Sampler {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    repetition_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    penalty_last_n: usize,
    rng: SplitMix64,
    window: Vec<u32>,
    candidates: Vec<Candidate>,
    weights: Vec<f64>,
}

impl Sampler {
    /// Creates a sampler seeded with `config.seed`.
    ///
    /// Never fails: values an unvalidated config may hold are made safe
    /// (a non-finite or negative temperature means greedy, a `NaN` top-p or
    /// one above 1 means off, a non-positive or non-finite repetition penalty
    /// means off, non-finite frequency/presence penalties mean off). Use
    /// [`GenerationConfig::validate`] to reject such configs instead.
    pub fn new(config: &GenerationConfig) -> Self {
        let finite_or = |x: f32, fallback: f32| if x.is_finite() { x } else { fallback };
        Self {
            temperature: if config.temperature.is_finite() && config.temperature > 0.0 {
                config.temperature
            } else {
                0.0
            },
            top_k: config.top_k,
            top_p: if config.top_p.is_nan() {
                1.0
            } else {
                config.top_p.clamp(0.0, 1.0)
            },
            repetition_penalty: if config.repetition_penalty.is_finite()
                && config.repetition_penalty > 0.0
            {
                config.repetition_penalty
            } else {
                1.0
            },
            frequency_penalty: finite_or(config.frequency_penalty, 0.0),
            presence_penalty: finite_or(config.presence_penalty, 0.0),
            penalty_last_n: config.penalty_last_n,
            rng: SplitMix64::new(config.seed),
            window: Vec::new(),
            candidates: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Restarts the pseudo-random sequence from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = SplitMix64::new(seed);
    }

    /// Picks the next token id.
    ///
    /// `logits` has one entry per vocabulary id (`-inf` masks a token);
    /// `history` holds the prompt and generated ids so far (ids not smaller
    /// than `logits.len()` are ignored). On success `logits` holds the
    /// penalised logits (temperature and filtering are not written back).
    ///
    /// Greedy decoding (temperature 0) does not advance the random generator.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> Result<u32, SampleError> {
        check_logits(logits)?;
        self.apply_penalties(logits, history);
        if self.temperature == 0.0 {
            return Ok(argmax(logits));
        }

        // Candidates: every unmasked token (there is at least one).
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| **l > f32::NEG_INFINITY)
                .map(|(i, &logit)| Candidate {
                    id: i as u32,
                    logit,
                }),
        );

        // Softmax weights relative to the maximum: exp((l - max) / T) ∈ (0, 1].
        let temperature = f64::from(self.temperature);
        let weight = |logit: f32, max: f64| det_exp((f64::from(logit) - max) / temperature);

        if self.top_k > 0 && self.top_k < self.candidates.len() {
            // Top-k by partial selection, then a sort of only the k survivors.
            self.candidates.select_nth_unstable_by(self.top_k - 1, rank);
            self.candidates.truncate(self.top_k);
            self.candidates.sort_unstable_by(rank);
            let max = f64::from(self.candidates[0].logit);
            self.weights.clear();
            self.weights
                .extend(self.candidates.iter().map(|c| weight(c.logit, max)));
            if self.top_p < 1.0 {
                let keep = nucleus_len(&self.weights, self.top_p);
                self.weights.truncate(keep);
                self.candidates.truncate(keep);
            }
        } else {
            let max = self
                .candidates
                .iter()
                .map(|c| c.logit)
                .fold(f32::NEG_INFINITY, f32::max);
            let max = f64::from(max);
            self.weights.clear();
            self.weights
                .extend(self.candidates.iter().map(|c| weight(c.logit, max)));
            if self.top_p < 1.0 {
                // Total mass summed in id order, then the nucleus without a
                // full sort of the vocabulary.
                let total: f64 = self.weights.iter().sum();
                let threshold = f64::from(self.top_p) * total;
                nucleus_select(&mut self.candidates, |l| weight(l, max), threshold);
                self.weights.clear();
                self.weights
                    .extend(self.candidates.iter().map(|c| weight(c.logit, max)));
            }
        }

        // Draw from the renormalised distribution.
        let total: f64 = self.weights.iter().sum();
        let target = self.rng.next_f64() * total;
        let mut cumulative = 0.0;
        let mut last_positive = self.candidates[0].id;
        for (c, &w) in self.candidates.iter().zip(&self.weights) {
            if w > 0.0 {
                last_positive = c.id;
            }
            cumulative += w;
            if target < cumulative {
                return Ok(c.id);
            }
        }
        // Only reachable through rounding at the very top of the range.
        Ok(last_positive)
    }

    /// Applies the repetition, frequency and presence penalties to `logits`
    /// in place, looking at the last `penalty_last_n` ids of `history` (all of
    /// it when 0). Each distinct id in that window is penalised once by the
    /// repetition penalty (`logit > 0 → logit / p`, else `logit * p`), then
    /// `logit -= count * frequency_penalty + presence_penalty`. Ids outside
    /// `logits` are ignored; `-inf` logits stay `-inf`, and finite ones are
    /// kept finite.
    ///
    /// Called by [`Sampler::sample`]; public so callers can inspect the
    /// penalised distribution.
    pub fn apply_penalties(&mut self, logits: &mut [f32], history: &[u32]) {
        let repetition = self.repetition_penalty != 1.0;
        let frequency = self.frequency_penalty != 0.0;
        let presence = self.presence_penalty != 0.0;
        if !(repetition || frequency || presence) || history.is_empty() {
            return;
        }
        let start = if self.penalty_last_n == 0 {
            0
        } else {
            history.len().saturating_sub(self.penalty_last_n)
        };
        let vocab = logits.len();
        self.window.clear();
        self.window.extend(
            history[start..]
                .iter()
                .copied()
                .filter(|&id| (id as usize) < vocab),
        );
        self.window.sort_unstable();
        for run in self.window.chunk_by(|a, b| a == b) {
            let id = run[0] as usize;
            let count = run.len() as f32;
            let logit = &mut logits[id];
            if !logit.is_finite() {
                continue; // masked tokens stay masked
            }
            let mut value = *logit;
            if repetition {
                value = if value > 0.0 {
                    value / self.repetition_penalty
                } else {
                    value * self.repetition_penalty
                };
                value = saturate(value);
            }
            if frequency || presence {
                value = saturate(value - (count * self.frequency_penalty + self.presence_penalty));
            }
            *logit = value;
        }
    }
}

/// Rejects empty slices, `NaN`/`+inf` logits and fully masked slices.
fn check_logits(logits: &[f32]) -> Result<(), SampleError> {
    if logits.is_empty() {
        return Err(SampleError::EmptyLogits);
    }
    // Branch-free scan first (vectorises); locate the culprit only on error.
    let bad = logits
        .iter()
        .fold(false, |acc, &v| acc | (v.is_nan() | (v == f32::INFINITY)));
    if bad {
        if let Some(index) = logits
            .iter()
            .position(|&v| v.is_nan() || v == f32::INFINITY)
        {
            return Err(SampleError::NonFiniteLogit {
                index,
                value: logits[index],
            });
        }
    }
    if logits.iter().any(|&v| v > f32::NEG_INFINITY) {
        Ok(())
    } else {
        Err(SampleError::AllMasked { len: logits.len() })
    }
}

/// Index of the largest logit, lowest index on ties. `logits` is non-empty
/// and NaN-free.
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > best_value {
            best = i;
            best_value = l;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(temperature: f32, top_k: usize, top_p: f32) -> GenerationConfig {
        GenerationConfig {
            temperature,
            top_k,
            top_p,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 1234,
            ..GenerationConfig::default()
        }
    }

    fn softmax(logits: &[f32], temperature: f64) -> Vec<f64> {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let w: Vec<f64> = logits
            .iter()
            .map(|&l| ((l as f64 - max) / temperature).exp())
            .collect();
        let s: f64 = w.iter().sum();
        w.iter().map(|x| x / s).collect()
    }

    /// Draws `n` tokens and returns per-id counts.
    fn histogram(sampler: &mut Sampler, logits: &[f32], n: usize) -> Vec<usize> {
        let mut counts = vec![0; logits.len()];
        for _ in 0..n {
            let mut l = logits.to_vec();
            counts[sampler.sample(&mut l, &[]).unwrap() as usize] += 1;
        }
        counts
    }

    /// Pearson chi-square statistic over buckets with non-zero expectation.
    fn chi_square(counts: &[usize], probs: &[f64], n: usize) -> f64 {
        counts
            .iter()
            .zip(probs)
            .filter(|(_, &p)| p > 0.0)
            .map(|(&c, &p)| {
                let e = p * n as f64;
                (c as f64 - e).powi(2) / e
            })
            .sum()
    }

    #[test]
    fn det_exp_matches_std() {
        let mut x = -700.0;
        while x <= 20.0 {
            let a = det_exp(x);
            let b = x.exp();
            assert!(((a - b) / b).abs() < 1e-15, "x={x} det={a} std={b}");
            x += 0.0137;
        }
        assert_eq!(det_exp(0.0), 1.0);
        assert_eq!(det_exp(-800.0), 0.0);
        assert_eq!(det_exp(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn greedy_picks_argmax() {
        let mut s = Sampler::new(&config(0.0, 40, 0.9));
        let mut logits = vec![0.1, 2.5, -1.0, 2.4, 0.0];
        assert_eq!(s.sample(&mut logits, &[]).unwrap(), 1);
        // Ties go to the lowest id.
        let mut logits = vec![1.0, 3.0, 3.0, -2.0];
        assert_eq!(s.sample(&mut logits, &[]).unwrap(), 1);
        // Masked tokens are never chosen.
        let mut logits = vec![f32::NEG_INFINITY, -5.0, f32::NEG_INFINITY];
        assert_eq!(s.sample(&mut logits, &[]).unwrap(), 1);
    }

    #[test]
    fn repetition_penalty_exact() {
        let mut cfg = config(0.0, 0, 1.0);
        cfg.repetition_penalty = 2.0;
        cfg.penalty_last_n = 4;
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![2.0, -1.0, 0.5, 3.0, -2.0, 0.0];
        // Window = [0, 1, 1, 99]: 3 falls outside it, 99 is out of vocabulary.
        s.apply_penalties(&mut logits, &[3, 0, 1, 1, 99]);
        assert_eq!(logits, vec![1.0, -2.0, 0.5, 3.0, -2.0, 0.0]);

        // penalty_last_n = 0 looks at the whole history; a zero logit stays 0.
        cfg.penalty_last_n = 0;
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![2.0, -1.0, 0.5, 3.0, -2.0, 0.0];
        s.apply_penalties(&mut logits, &[3, 0, 1, 1, 5, 3, 3]);
        assert_eq!(logits, vec![1.0, -2.0, 0.5, 1.5, -2.0, 0.0]);
    }

    #[test]
    fn frequency_and_presence_penalties_exact() {
        let mut cfg = config(0.0, 0, 1.0);
        cfg.frequency_penalty = 0.5;
        cfg.penalty_last_n = 5;
        let history = [4, 2, 0, 2, 2, 1];
        // Window = [2, 0, 2, 2, 1]: counts 0→1, 1→1, 2→3.
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![1.0, 1.0, 1.0, 1.0, 1.0];
        s.apply_penalties(&mut logits, &history);
        assert_eq!(logits, vec![0.5, 0.5, -0.5, 1.0, 1.0]);

        cfg.frequency_penalty = 0.0;
        cfg.presence_penalty = 0.25;
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![1.0, 1.0, 1.0, 1.0, 1.0];
        s.apply_penalties(&mut logits, &history);
        assert_eq!(logits, vec![0.75, 0.75, 0.75, 1.0, 1.0]);

        // Both, after the repetition penalty: 2 → 2/2 = 1 → 1 - (3*0.5 + 0.25).
        cfg.frequency_penalty = 0.5;
        cfg.repetition_penalty = 2.0;
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![-1.0, 4.0, 2.0, 1.0, 1.0];
        s.apply_penalties(&mut logits, &history);
        assert_eq!(logits, vec![-2.75, 1.25, -0.75, 1.0, 1.0]);
    }

    #[test]
    fn penalties_change_greedy_choice_and_keep_masks() {
        let mut cfg = config(0.0, 0, 1.0);
        cfg.presence_penalty = 2.0;
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![3.0, 2.0, f32::NEG_INFINITY];
        assert_eq!(s.sample(&mut logits, &[0, 2]).unwrap(), 1);
        assert_eq!(logits, vec![1.0, 2.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn extreme_penalties_stay_finite() {
        let mut cfg = config(1.0, 0, 1.0);
        cfg.repetition_penalty = 1e-30;
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![1e10, -1e10, 1.0];
        let id = s.sample(&mut logits, &[0, 1]).unwrap();
        assert!(logits.iter().all(|l| l.is_finite()), "{logits:?}");
        assert_eq!(id, 0);
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let mut rng = SplitMix64::new(99);
        let mut greedy = Sampler::new(&config(0.0, 0, 1.0));
        for case in 0..200 {
            let mut logits: Vec<f32> = (0..300)
                .map(|_| ((rng.next_f64() * 20.0 - 10.0) as f32 * 4.0).round() / 4.0)
                .collect();
            if case % 3 == 0 {
                // Force a tie at the top.
                let m = logits.iter().cloned().fold(f32::MIN, f32::max);
                logits[299] = m;
            }
            let mut sampled = Sampler::new(&GenerationConfig {
                seed: case,
                ..config(0.8, 1, 0.9)
            });
            let a = greedy.sample(&mut logits.clone(), &[]).unwrap();
            let b = sampled.sample(&mut logits.clone(), &[]).unwrap();
            assert_eq!(a, b, "case {case}");
        }
    }

    #[test]
    fn top_k_restricts_to_k_best_on_large_vocab() {
        let vocab = 50_000;
        let mut rng = SplitMix64::new(5);
        let logits: Vec<f32> = (0..vocab).map(|_| rng.next_f64() as f32 * 8.0).collect();
        let mut ranked: Vec<u32> = (0..vocab as u32).collect();
        ranked.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        let top: std::collections::HashSet<u32> = ranked[..40].iter().copied().collect();
        let mut s = Sampler::new(&config(1.0, 40, 1.0));
        for _ in 0..50 {
            let id = s.sample(&mut logits.clone(), &[]).unwrap();
            assert!(top.contains(&id));
        }
    }

    #[test]
    fn nucleus_keeps_smallest_set() {
        let w = [0.5, 0.25, 0.15, 0.1];
        assert_eq!(nucleus_len(&w, 0.1), 1);
        assert_eq!(nucleus_len(&w, 0.5), 1);
        assert_eq!(nucleus_len(&w, 0.6), 2);
        assert_eq!(nucleus_len(&w, 0.8), 3);
        assert_eq!(nucleus_len(&w, 0.95), 4);
        assert_eq!(nucleus_len(&w, 1.0), 4);
        // Unnormalised weights give the same answer.
        let w2: Vec<f64> = w.iter().map(|x| x * 8.0).collect();
        assert_eq!(nucleus_len(&w2, 0.6), 2);
        assert_eq!(nucleus_len(&[1.0], 0.01), 1);
    }

    #[test]
    fn top_p_end_to_end() {
        // Probabilities 0.5, 0.25, 0.15, 0.1 (shuffled ids); top_p 0.6 keeps
        // ids 2 and 0, renormalised to 2/3 and 1/3.
        let probs = [0.25f64, 0.15, 0.5, 0.1];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
        let mut s = Sampler::new(&config(1.0, 0, 0.6));
        let n = 6000;
        let counts = histogram(&mut s, &logits, n);
        assert_eq!(counts[1] + counts[3], 0, "{counts:?}");
        let share = counts[2] as f64 / n as f64;
        assert!((share - 2.0 / 3.0).abs() < 0.03, "{counts:?}");
        // top_p 0.8 keeps three.
        let mut s = Sampler::new(&config(1.0, 0, 0.8));
        let counts = histogram(&mut s, &logits, n);
        assert_eq!(counts[3], 0);
        assert!(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    }

    #[test]
    fn nucleus_select_matches_full_sort() {
        let mut rng = SplitMix64::new(11);
        for (vocab, spread, top_p) in [
            (5000, 1.0, 0.5),
            (5000, 1.0, 0.99),
            (5000, 30.0, 0.9),
            (300, 3.0, 0.7),
            (10, 1.0, 0.9),
        ] {
            let cands: Vec<Candidate> = (0..vocab)
                .map(|id| Candidate {
                    id,
                    logit: ((rng.next_f64() * spread * 8.0).round() / 8.0) as f32,
                })
                .collect();
            let weight = |l: f32| det_exp(f64::from(l) - spread);
            let mut reference = cands.clone();
            reference.sort_by(rank);
            let w: Vec<f64> = reference.iter().map(|c| weight(c.logit)).collect();
            let total: f64 = cands.iter().map(|c| weight(c.logit)).sum();
            let keep = prefix_reaching(w.iter().copied(), top_p * total).unwrap_or(w.len());
            let mut got = cands.clone();
            nucleus_select(&mut got, weight, top_p * total);
            let ids = |v: &[Candidate]| v.iter().map(|c| c.id).collect::<Vec<_>>();
            assert_eq!(
                ids(&got),
                ids(&reference[..keep]),
                "vocab={vocab} top_p={top_p}"
            );
        }
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let logits = vec![0.3, 1.2, -0.4, 0.9, 0.0, 1.1, -2.0, 0.5];
        let cfg = GenerationConfig {
            repetition_penalty: 1.0,
            ..GenerationConfig::default()
        };
        let run = |seed: u64| {
            let mut s = Sampler::new(&GenerationConfig {
                seed,
                ..cfg.clone()
            });
            (0..64)
                .map(|_| s.sample(&mut logits.clone(), &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        // reseed restarts the sequence.
        let mut s = Sampler::new(&cfg);
        let first: Vec<u32> = (0..10)
            .map(|_| s.sample(&mut logits.clone(), &[]).unwrap())
            .collect();
        s.reseed(42);
        let again: Vec<u32> = (0..10)
            .map(|_| s.sample(&mut logits.clone(), &[]).unwrap())
            .collect();
        assert_eq!(first, again);
    }

    #[test]
    fn golden_sequence_is_platform_independent() {
        // Pinned output: must be identical on every platform and release.
        let logits = vec![0.3, 1.2, -0.4, 0.9, 0.0, 1.1, -2.0, 0.5];
        let mut s = Sampler::new(&GenerationConfig {
            temperature: 0.9,
            top_k: 6,
            top_p: 0.95,
            repetition_penalty: 1.0,
            seed: 7,
            ..GenerationConfig::default()
        });
        let got: Vec<u32> = (0..24)
            .map(|_| s.sample(&mut logits.clone(), &[]).unwrap())
            .collect();
        assert_eq!(got, GOLDEN, "{got:?}");
    }
    const GOLDEN: [u32; 24] = [
        5, 1, 0, 3, 5, 1, 5, 5, 1, 5, 1, 4, 0, 0, 0, 3, 0, 5, 3, 7, 3, 1, 5, 5,
    ];

    #[test]
    fn empirical_distribution_matches_softmax() {
        let logits = vec![1.0, 2.0, 0.5, -1.0, 3.0, 0.0];
        let n = 20_000;
        for temperature in [1.0f32, 0.5, 2.0] {
            let mut s = Sampler::new(&config(temperature, 0, 1.0));
            let counts = histogram(&mut s, &logits, n);
            let probs = softmax(&logits, temperature as f64);
            // df = 5; the 99.9% quantile is 20.5.
            let chi2 = chi_square(&counts, &probs, n);
            assert!(chi2 < 20.5, "T={temperature} chi2={chi2} {counts:?}");
            for (c, p) in counts.iter().zip(&probs) {
                let observed = *c as f64 / n as f64;
                assert!((observed - p).abs() < 0.015, "T={temperature} {counts:?}");
            }
        }
    }

    #[test]
    fn top_k_distribution_is_renormalised_softmax() {
        let logits = vec![1.0, 2.0, 0.5, -1.0, 3.0, 0.0];
        let n = 20_000;
        let mut s = Sampler::new(&config(1.0, 3, 1.0));
        let counts = histogram(&mut s, &logits, n);
        // Top 3: ids 4, 1, 0.
        let kept = [logits[0], logits[1], logits[4]];
        let p = softmax(&kept, 1.0);
        let probs = vec![p[0], p[1], 0.0, 0.0, p[2], 0.0];
        assert_eq!(counts[2] + counts[3] + counts[5], 0);
        let chi2 = chi_square(&counts, &probs, n);
        assert!(chi2 < 13.8, "chi2={chi2} {counts:?}"); // df = 2
    }

    #[test]
    fn masked_tokens_never_sampled() {
        let logits = vec![f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        let mut s = Sampler::new(&config(1.0, 0, 1.0));
        let counts = histogram(&mut s, &logits, 2000);
        assert_eq!(counts[0] + counts[2], 0);
        assert!(counts[1] > 800 && counts[3] > 800);
    }

    #[test]
    fn bad_logits_are_errors_not_panics() {
        for temperature in [0.0, 0.7] {
            let mut s = Sampler::new(&config(temperature, 40, 0.9));
            assert_eq!(s.sample(&mut [], &[1, 2]), Err(SampleError::EmptyLogits));
            let err = s.sample(&mut [0.0, f32::NAN, 1.0], &[]).unwrap_err();
            assert!(
                matches!(err, SampleError::NonFiniteLogit { index: 1, value } if value.is_nan())
            );
            assert_eq!(
                s.sample(&mut [0.0, 1.0, f32::INFINITY], &[]),
                Err(SampleError::NonFiniteLogit {
                    index: 2,
                    value: f32::INFINITY
                })
            );
            assert_eq!(
                s.sample(&mut [f32::NEG_INFINITY; 3], &[]),
                Err(SampleError::AllMasked { len: 3 })
            );
        }
        let msg = SampleError::NonFiniteLogit {
            index: 3,
            value: f32::NAN,
        }
        .to_string();
        assert_eq!(
            msg,
            "logits[3] is NaN; logits must be finite (or -inf to mask a token)"
        );
    }

    #[test]
    fn unvalidated_config_is_made_safe() {
        let cfg = GenerationConfig {
            temperature: f32::NAN,
            top_p: f32::NAN,
            repetition_penalty: -1.0,
            frequency_penalty: f32::INFINITY,
            presence_penalty: f32::NAN,
            ..GenerationConfig::default()
        };
        let mut s = Sampler::new(&cfg);
        let mut logits = vec![0.0, 5.0, 1.0];
        assert_eq!(s.sample(&mut logits, &[1, 1, 1]).unwrap(), 1);
        assert_eq!(logits, vec![0.0, 5.0, 1.0]);
        // top_p 0 keeps exactly the best token.
        let mut s = Sampler::new(&config(1.0, 0, 0.0));
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [0.0, 0.1, 0.05], &[]).unwrap(), 1);
        }
    }
}
