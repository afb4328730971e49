//! Exact fractions over checked `i128`: the calculator's numbers.
//!
//! Every operation reduces by the greatest common divisor first and checks for overflow,
//! so a result is either exact or [`Overflow`]; nothing is ever rounded.

use std::fmt;

/// An arithmetic result that does not fit in `i128` numerator and denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// A fraction `num/den` in lowest terms with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Rational {
    /// Zero.
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    /// One.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// The whole number `n`.
    pub fn integer(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    /// `num/den` reduced; `None` when `den` is 0.
    pub fn new(num: i128, den: i128) -> Result<Option<Self>, Overflow> {
        if den == 0 {
            return Ok(None);
        }
        let g = gcd(num, den);
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg().ok_or(Overflow)?;
            den = den.checked_neg().ok_or(Overflow)?;
        }
        Ok(Some(Self { num, den }))
    }

    /// The numerator (carries the sign).
    pub fn numer(&self) -> i128 {
        self.num
    }

    /// The denominator (always positive).
    pub fn denom(&self) -> i128 {
        self.den
    }

    /// Whether this is a whole number.
    pub fn is_integer(&self) -> bool {
        self.den == 1
    }

    /// `self + other`.
    pub fn checked_add(self, other: Self) -> Result<Self, Overflow> {
        let g = gcd(self.den, other.den);
        let lhs = self.num.checked_mul(other.den / g).ok_or(Overflow)?;
        let rhs = other.num.checked_mul(self.den / g).ok_or(Overflow)?;
        let num = lhs.checked_add(rhs).ok_or(Overflow)?;
        let den = (self.den / g).checked_mul(other.den).ok_or(Overflow)?;
        Ok(Self::new(num, den)?.expect("denominators are positive"))
    }

    /// `-self`.
    pub fn checked_neg(self) -> Result<Self, Overflow> {
        Ok(Self {
            num: self.num.checked_neg().ok_or(Overflow)?,
            den: self.den,
        })
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Self) -> Result<Self, Overflow> {
        self.checked_add(other.checked_neg()?)
    }

    /// `self × other`, cross-reduced first so intermediate products stay small.
    pub fn checked_mul(self, other: Self) -> Result<Self, Overflow> {
        let g1 = gcd(self.num, other.den).max(1);
        let g2 = gcd(other.num, self.den).max(1);
        let num = (self.num / g1)
            .checked_mul(other.num / g2)
            .ok_or(Overflow)?;
        let den = (self.den / g2)
            .checked_mul(other.den / g1)
            .ok_or(Overflow)?;
        Ok(Self::new(num, den)?.expect("denominators are positive"))
    }

    /// `1 / self`; `None` for zero.
    pub fn recip(self) -> Result<Option<Self>, Overflow> {
        Self::new(self.den, self.num)
    }

    /// `self ÷ other`; `None` when `other` is zero.
    pub fn checked_div(self, other: Self) -> Result<Option<Self>, Overflow> {
        match other.recip()? {
            Some(r) => self.checked_mul(r).map(Some),
            None => Ok(None),
        }
    }

    /// `self` to the whole power `exp` (negative powers give the reciprocal); `None` for
    /// zero to a negative power.
    pub fn checked_pow(self, exp: i128) -> Result<Option<Self>, Overflow> {
        let base = if exp < 0 {
            match self.recip()? {
                Some(r) => r,
                None => return Ok(None),
            }
        } else {
            self
        };
        let mut e = exp.unsigned_abs();
        let (mut acc, mut sq) = (Self::ONE, base);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.checked_mul(sq)?;
            }
            e >>= 1;
            if e > 0 {
                sq = sq.checked_mul(sq)?;
            }
        }
        Ok(Some(acc))
    }

    /// The exact square root, when numerator and denominator are both perfect squares.
    pub fn sqrt(self) -> Option<Self> {
        if self.num < 0 {
            return None;
        }
        let n = isqrt(self.num)?;
        let d = isqrt(self.den)?;
        Some(Self { num: n, den: d })
    }

    /// The decimal digits of this value when it terminates (its denominator has no prime
    /// factor but 2 and 5), e.g. `0.3`, `-12.25`, `56`.
    pub fn terminating_decimal(&self) -> Option<String> {
        let mut den = self.den;
        let (mut twos, mut fives) = (0u32, 0u32);
        while den % 2 == 0 {
            den /= 2;
            twos += 1;
        }
        while den % 5 == 0 {
            den /= 5;
            fives += 1;
        }
        if den != 1 {
            return None;
        }
        let places = twos.max(fives);
        // Scale to num × 10^places / den, an integer; place the point.
        let scale = 10i128.checked_pow(places)?;
        let scaled = self.num.checked_mul(scale / self.den)?;
        let digits = scaled.unsigned_abs().to_string();
        let sign = if scaled < 0 { "-" } else { "" };
        if places == 0 {
            return Some(format!("{sign}{digits}"));
        }
        let places = places as usize;
        let padded = format!("{digits:0>width$}", width = places + 1);
        let (int, frac) = padded.split_at(padded.len() - places);
        Some(format!("{sign}{int}.{frac}"))
    }
}

/// The integer square root of `n` when `n` is a perfect square.
fn isqrt(n: i128) -> Option<i128> {
    if n < 0 {
        return None;
    }
    let n = n as u128;
    // Newton's method from a float estimate, corrected to the exact floor.
    let mut r = (n as f64).sqrt() as u128;
    while r.checked_mul(r).is_none_or(|sq| sq > n) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|sq| sq <= n) {
        r += 1;
    }
    (r * r == n).then_some(r as i128)
}

impl fmt::Display for Rational {
    /// `56`, `-3/4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i128, d: i128) -> Rational {
        Rational::new(n, d).unwrap().unwrap()
    }

    #[test]
    fn arithmetic_is_exact_and_reduced() {
        assert_eq!(r(1, 2).checked_add(r(1, 4)).unwrap(), r(3, 4));
        assert_eq!(r(1, 10).checked_add(r(2, 10)).unwrap(), r(3, 10));
        assert_eq!(r(2, -4), r(-1, 2));
        assert_eq!(r(2, 3).checked_mul(r(3, 4)).unwrap(), r(1, 2));
        assert_eq!(r(1, 2).checked_div(Rational::ZERO).unwrap(), None);
        assert_eq!(r(2, 3).checked_pow(-2).unwrap().unwrap(), r(9, 4));
        assert_eq!(Rational::ZERO.checked_pow(-1).unwrap(), None);
        assert_eq!(r(9, 16).sqrt(), Some(r(3, 4)));
        assert_eq!(r(2, 1).sqrt(), None);
        assert_eq!(r(-4, 1).sqrt(), None);
    }

    #[test]
    fn overflow_is_reported() {
        let big = Rational::integer(i128::MAX / 2);
        assert_eq!(big.checked_mul(Rational::integer(4)), Err(Overflow));
        assert_eq!(Rational::integer(10).checked_pow(40), Err(Overflow));
        assert!(Rational::integer(10).checked_pow(38).is_ok());
    }

    #[test]
    fn decimals_terminate_only_for_twos_and_fives() {
        assert_eq!(r(3, 10).terminating_decimal().as_deref(), Some("0.3"));
        assert_eq!(r(-49, 4).terminating_decimal().as_deref(), Some("-12.25"));
        assert_eq!(r(56, 1).terminating_decimal().as_deref(), Some("56"));
        assert_eq!(r(1, 80).terminating_decimal().as_deref(), Some("0.0125"));
        assert_eq!(r(1, 3).terminating_decimal(), None);
        assert_eq!(r(3, 4).to_string(), "3/4");
    }

    #[test]
    fn perfect_squares_near_the_float_limit() {
        let n: i128 = 3_037_000_499;
        assert_eq!(isqrt(n * n), Some(n));
        assert_eq!(isqrt(n * n + 1), None);
        assert_eq!(isqrt(0), Some(0));
    }
}
