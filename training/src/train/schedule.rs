//! The learning-rate schedule (linear warmup, then linear decay to zero, as transformers'
//! `get_linear_schedule_with_warmup`) and global-norm gradient clipping.

use candle_core::Tensor;

/// Linear warmup over `warmup` steps, then linear decay to zero at `total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warmup steps: `ceil(warmup_ratio · total)`.
    pub warmup: usize,
    /// Optimiser steps of the whole run.
    pub total: usize,
}

impl LinearSchedule {
    /// The schedule of a run of `total` steps.
    pub fn new(peak: f64, warmup_ratio: f64, total: usize) -> Self {
        Self {
            peak,
            warmup: (warmup_ratio * total as f64).ceil() as usize,
            total,
        }
    }

    /// The rate of optimiser step `step` (0-based), as transformers' scheduler gives it.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let left = self.total.saturating_sub(step) as f64;
        self.peak * (left / self.total.saturating_sub(self.warmup).max(1) as f64).max(0.0)
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`, coefficient `max_norm / (norm + 1e-6)`); returns the norm before.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> candle_core::Result<f64> {
    let mut sum = 0f64;
    for g in grads.iter() {
        sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = sum.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn warms_up_then_decays_to_zero() {
        let s = LinearSchedule::new(1.0, 0.1, 20);
        assert_eq!(s.warmup, 2);
        assert_eq!(s.lr(0), 0.0);
        assert_eq!(s.lr(1), 0.5);
        assert_eq!(s.lr(2), 1.0);
        assert!((s.lr(11) - 0.5).abs() < 1e-12);
        assert_eq!(s.lr(20), 0.0);
        let flat = LinearSchedule::new(2.0, 0.0, 4);
        assert_eq!([flat.lr(0), flat.lr(2)], [2.0, 1.0]);
    }

    #[test]
    fn clipping_scales_to_the_maximum_norm() {
        let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
        let mut grads = vec![t(&[3.0]), t(&[4.0, 0.0])];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let after: f32 = grads
            .iter()
            .map(|g| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .sum();
        assert!((after.sqrt() - 1.0).abs() < 1e-5);
        let mut small = vec![t(&[0.3])];
        clip_grad_norm(&mut small, 1.0).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap(), [0.3]);
    }
}
