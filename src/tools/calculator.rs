//! The `calculator` tool: exact arithmetic on what students type.
//!
//! [`parse`] reads integers, decimals and fractions with the symbols and words students use
//! (`+ - * / x × ÷ ^ ** √ %`, `plus`, `minus`, `times`, `multiplied by`, `divided by`,
//! `over`, `to the power of`, `squared`, `cubed`, `square root of`, `sqrt(..)`,
//! `15% of 80`) and parentheses into an [`Expr`], whose `Display` is a canonical form
//! (`7 times 8` → `7*8`). [`Expr::evaluate`] computes it exactly as a [`Rational`]; the
//! answer is printed exactly: `3/4`, `56`, and as a decimal (`0.3`) when the input had
//! decimals or percentages and the value terminates.

use std::fmt;

use thiserror::Error;

use super::rational::{Overflow, Rational};

/// Why an expression could not be read or computed. Every message names the expression.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CalcError {
    /// Something that is not arithmetic, or arithmetic with a piece missing.
    #[error("calculator: `{expression}`: {problem}")]
    Malformed {
        /// The expression as given.
        expression: String,
        /// What is wrong, e.g. `unexpected word "apples"`.
        problem: String,
    },
    /// A division (or a negative power) of zero.
    #[error("calculator: `{expression}`: division by zero is undefined")]
    DivisionByZero {
        /// The expression as given.
        expression: String,
    },
    /// A square root that is not a whole number or fraction.
    #[error("calculator: `{expression}`: the square root of {value} is not exact")]
    InexactRoot {
        /// The expression as given.
        expression: String,
        /// The number under the root.
        value: String,
    },
    /// A square root of a negative number.
    #[error("calculator: `{expression}`: {value} is negative, so it has no real square root")]
    NegativeRoot {
        /// The expression as given.
        expression: String,
        /// The number under the root.
        value: String,
    },
    /// A power whose exponent is not a whole number.
    #[error("calculator: `{expression}`: the exponent {exponent} is not a whole number")]
    FractionalPower {
        /// The expression as given.
        expression: String,
        /// The exponent.
        exponent: String,
    },
    /// Numbers too large for exact arithmetic.
    #[error("calculator: `{expression}`: the numbers grow too large to compute exactly")]
    Overflow {
        /// The expression as given.
        expression: String,
    },
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `^`
    Pow,
}

/// A parsed arithmetic expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number as written (thousands separators removed), with its value.
    Number {
        /// Digits as written, e.g. `0.5`.
        text: String,
        /// Its exact value.
        value: Rational,
    },
    /// `-x`
    Neg(Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x%` (x / 100)
    Percent(Box<Expr>),
    /// `p% of x`
    PercentOf(Box<Expr>, Box<Expr>),
    /// `sqrt(x)`
    Sqrt(Box<Expr>),
}

/// A computed expression: its canonical form and exact value.
#[derive(Debug, Clone, PartialEq)]
pub struct Calculation {
    /// The canonical expression, e.g. `1/2 + 1/4`.
    pub expression: String,
    /// The exact value.
    pub value: Rational,
    /// The input had decimals or percentages, so a terminating value prints as a decimal.
    pub decimal: bool,
}

impl Calculation {
    /// The exact answer: `56`, `3/4`, or `0.3` when the input was decimal and the value
    /// terminates.
    pub fn answer(&self) -> String {
        if self.decimal {
            if let Some(d) = self.value.terminating_decimal() {
                return d;
            }
        }
        self.value.to_string()
    }

    /// `7*8 = 56`; a fraction also shows its decimal (`1/2 + 1/4 = 3/4 = 0.75`, or
    /// `1/3 ≈ 0.3333` when it does not terminate).
    pub fn summary(&self) -> String {
        let answer = self.answer();
        let mut line = format!("{} = {answer}", self.expression);
        if answer.contains('/') {
            match self.value.terminating_decimal() {
                Some(d) => line.push_str(&format!(" = {d}")),
                None => {
                    let approx = self.value.numer() as f64 / self.value.denom() as f64;
                    line.push_str(&format!(" ≈ {approx:.4}"));
                }
            }
        }
        line
    }
}

/// Parses and computes `input`.
pub fn calculate(input: &str) -> Result<Calculation, CalcError> {
    let expr = parse(input)?;
    let value = expr.evaluate(input)?;
    Ok(Calculation {
        expression: expr.to_string(),
        value,
        decimal: expr.has_decimals(),
    })
}

/// Parses `input` as an arithmetic expression.
pub fn parse(input: &str) -> Result<Expr, CalcError> {
    let tokens = lex(input)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        input,
    };
    if tokens.is_empty() {
        return Err(parser.malformed("there is nothing to calculate".into()));
    }
    let expr = parser.expr()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(t) => Err(parser.malformed(format!("unexpected {t} after a complete expression"))),
    }
}

impl Expr {
    /// Whether the expression has an operation (a plain number is not a calculation).
    pub fn is_operation(&self) -> bool {
        !matches!(self, Expr::Number { .. })
    }

    /// Whether any number was written with a decimal point, or a percentage is taken.
    pub fn has_decimals(&self) -> bool {
        match self {
            Expr::Number { text, .. } => text.contains('.'),
            Expr::Percent(_) | Expr::PercentOf(..) => true,
            Expr::Neg(x) | Expr::Sqrt(x) => x.has_decimals(),
            Expr::Binary(_, a, b) => a.has_decimals() || b.has_decimals(),
        }
    }

    /// The exact value; `input` names the expression in errors.
    pub fn evaluate(&self, input: &str) -> Result<Rational, CalcError> {
        let expression = || input.trim().to_owned();
        let overflow = |_: Overflow| CalcError::Overflow {
            expression: expression(),
        };
        let by_zero = || CalcError::DivisionByZero {
            expression: expression(),
        };
        let hundred = Rational::integer(100);
        Ok(match self {
            Expr::Number { value, .. } => *value,
            Expr::Neg(x) => x.evaluate(input)?.checked_neg().map_err(overflow)?,
            Expr::Percent(x) => x
                .evaluate(input)?
                .checked_div(hundred)
                .map_err(overflow)?
                .ok_or_else(by_zero)?,
            Expr::PercentOf(p, x) => {
                let share = p.evaluate(input)?.checked_div(hundred).map_err(overflow)?;
                let share = share.ok_or_else(by_zero)?;
                share.checked_mul(x.evaluate(input)?).map_err(overflow)?
            }
            Expr::Sqrt(x) => {
                let v = x.evaluate(input)?;
                if v.numer() < 0 {
                    return Err(CalcError::NegativeRoot {
                        expression: expression(),
                        value: v.to_string(),
                    });
                }
                v.sqrt().ok_or_else(|| CalcError::InexactRoot {
                    expression: expression(),
                    value: v.to_string(),
                })?
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.evaluate(input)?, b.evaluate(input)?);
                match op {
                    BinOp::Add => a.checked_add(b).map_err(overflow)?,
                    BinOp::Sub => a.checked_sub(b).map_err(overflow)?,
                    BinOp::Mul => a.checked_mul(b).map_err(overflow)?,
                    BinOp::Div => a.checked_div(b).map_err(overflow)?.ok_or_else(by_zero)?,
                    BinOp::Pow => {
                        if !b.is_integer() {
                            return Err(CalcError::FractionalPower {
                                expression: expression(),
                                exponent: b.to_string(),
                            });
                        }
                        a.checked_pow(b.numer())
                            .map_err(overflow)?
                            .ok_or_else(by_zero)?
                    }
                }
            }
        })
    }

    /// Binding strength, for printing the fewest parentheses.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Binary(BinOp::Add | BinOp::Sub, ..) => 1,
            Expr::Binary(BinOp::Mul | BinOp::Div, ..) | Expr::PercentOf(..) => 2,
            Expr::Neg(_) => 3,
            Expr::Binary(BinOp::Pow, ..) => 4,
            Expr::Number { .. } | Expr::Percent(_) | Expr::Sqrt(_) => 5,
        }
    }
}

/// Writes `e`, in parentheses when it binds less tightly than `min`.
fn operand(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if e.precedence() < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for Expr {
    /// The canonical form: `7*8`, `1/2 + 1/4`, `2^10`, `sqrt(144)`, `15% of 80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number { text, .. } => f.write_str(text),
            Expr::Neg(x) => {
                f.write_str("-")?;
                operand(f, x, 3)
            }
            Expr::Percent(x) => {
                operand(f, x, 5)?;
                f.write_str("%")
            }
            Expr::PercentOf(p, x) => {
                operand(f, p, 5)?;
                f.write_str("% of ")?;
                operand(f, x, 3)
            }
            Expr::Sqrt(x) => write!(f, "sqrt({x})"),
            Expr::Binary(op, a, b) => {
                let (symbol, left, right) = match op {
                    BinOp::Add => (" + ", 1, 2),
                    BinOp::Sub => (" - ", 1, 2),
                    BinOp::Mul => ("*", 2, 3),
                    BinOp::Div => ("/", 2, 3),
                    BinOp::Pow => ("^", 5, 3),
                };
                operand(f, a, left)?;
                f.write_str(symbol)?;
                operand(f, b, right)
            }
        }
    }
}

/// A lexical token.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(String, Rational),
    Op(BinOp),
    Open,
    Close,
    Sqrt,
    Percent,
    Of,
    Squared,
    Cubed,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(text, _) => write!(f, "number {text}"),
            Token::Op(op) => write!(
                f,
                "\"{}\"",
                match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Pow => "^",
                }
            ),
            Token::Open => f.write_str("\"(\""),
            Token::Close => f.write_str("\")\""),
            Token::Sqrt => f.write_str("square root"),
            Token::Percent => f.write_str("\"%\""),
            Token::Of => f.write_str("\"of\""),
            Token::Squared => f.write_str("\"squared\""),
            Token::Cubed => f.write_str("\"cubed\""),
        }
    }
}

/// Word phrases and their tokens, longest first so `divided by` wins over a lone word.
const PHRASES: &[(&[&str], Token)] = &[
    (
        &["raised", "to", "the", "power", "of"],
        Token::Op(BinOp::Pow),
    ),
    (&["to", "the", "power", "of"], Token::Op(BinOp::Pow)),
    (&["the", "square", "root", "of"], Token::Sqrt),
    (&["square", "root", "of"], Token::Sqrt),
    (&["raised", "to"], Token::Op(BinOp::Pow)),
    (&["divided", "by"], Token::Op(BinOp::Div)),
    (&["multiplied", "by"], Token::Op(BinOp::Mul)),
    (&["plus"], Token::Op(BinOp::Add)),
    (&["minus"], Token::Op(BinOp::Sub)),
    (&["times"], Token::Op(BinOp::Mul)),
    (&["x"], Token::Op(BinOp::Mul)),
    (&["over"], Token::Op(BinOp::Div)),
    (&["sqrt"], Token::Sqrt),
    (&["percent"], Token::Percent),
    (&["of"], Token::Of),
    (&["squared"], Token::Squared),
    (&["cubed"], Token::Cubed),
];

/// Splits `input` into tokens.
fn lex(input: &str) -> Result<Vec<Token>, CalcError> {
    let malformed = |problem: String| CalcError::Malformed {
        expression: input.trim().to_owned(),
        problem,
    };
    let lower = input.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut tokens = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            words.push(chars[start..i].iter().collect());
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        flush_words(&mut words, &mut tokens).map_err(&malformed)?;
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (text, end) = number_text(&chars, i);
            let value = decimal_value(&text).ok_or_else(|| {
                malformed(format!("the number {text} is too long to compute exactly"))
            })?;
            tokens.push(Token::Number(text, value));
            i = end;
            continue;
        }
        let token = match c {
            '+' => Token::Op(BinOp::Add),
            '-' | '−' | '–' => Token::Op(BinOp::Sub),
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                Token::Op(BinOp::Pow)
            }
            '*' | '×' | '·' | '⋅' => Token::Op(BinOp::Mul),
            '/' | '÷' | '∕' => Token::Op(BinOp::Div),
            '^' => Token::Op(BinOp::Pow),
            '√' => Token::Sqrt,
            '%' => Token::Percent,
            '(' | '[' => Token::Open,
            ')' | ']' => Token::Close,
            '²' => Token::Squared,
            '³' => Token::Cubed,
            other => return Err(malformed(format!("unexpected character {other:?}"))),
        };
        tokens.push(token);
        i += 1;
    }
    flush_words(&mut words, &mut tokens).map_err(malformed)?;
    Ok(tokens)
}

/// Turns the pending run of words into tokens by matching [`PHRASES`].
fn flush_words(words: &mut Vec<String>, tokens: &mut Vec<Token>) -> Result<(), String> {
    let mut rest: &[String] = words;
    'outer: while !rest.is_empty() {
        for (phrase, token) in PHRASES {
            if rest.len() >= phrase.len() && rest.iter().zip(phrase.iter()).all(|(a, b)| a == b) {
                tokens.push(token.clone());
                rest = &rest[phrase.len()..];
                continue 'outer;
            }
        }
        return Err(format!("unexpected word \"{}\"", rest[0]));
    }
    words.clear();
    Ok(())
}

/// The number starting at `chars[start]`: digits, thousands separators (`1,000`) and one
/// decimal point. Returns its text without separators and the index after it.
fn number_text(chars: &[char], start: usize) -> (String, usize) {
    let mut text = String::new();
    let mut i = start;
    let mut seen_point = false;
    while i < chars.len() {
        let c = chars[i];
        let digits_follow =
            |n: usize| (1..=n).all(|k| chars.get(i + k).is_some_and(char::is_ascii_digit));
        if c.is_ascii_digit() {
            text.push(c);
        } else if c == '.' && !seen_point && digits_follow(1) {
            seen_point = true;
            text.push(c);
        } else if c == ','
            && !seen_point
            && !text.is_empty()
            && digits_follow(3)
            && !chars.get(i + 4).is_some_and(char::is_ascii_digit)
        {
            // A thousands separator: exactly three digits follow.
        } else {
            break;
        }
        i += 1;
    }
    if text.starts_with('.') {
        text.insert(0, '0');
    }
    (text, i)
}

/// The exact value of a decimal numeral such as `12.25`.
fn decimal_value(text: &str) -> Option<Rational> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let scale = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    Rational::new(digits, scale).ok().flatten()
}

/// Recursive-descent parser over the tokens.
struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn malformed(&self, problem: String) -> CalcError {
        CalcError::Malformed {
            expression: self.input.trim().to_owned(),
            problem,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `term (("+" | "-") term)*`
    fn expr(&mut self) -> Result<Expr, CalcError> {
        let mut lhs = self.term()?;
        while let Some(Token::Op(op @ (BinOp::Add | BinOp::Sub))) = self.peek() {
            let op = *op;
            self.at += 1;
            let rhs = self.term()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    /// `unary (("*" | "/") unary | implicit product with "(" or a root)*`
    fn term(&mut self) -> Result<Expr, CalcError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(op @ (BinOp::Mul | BinOp::Div))) => {
                    let op = *op;
                    self.at += 1;
                    op
                }
                Some(Token::Open | Token::Sqrt) => BinOp::Mul,
                _ => return Ok(lhs),
            };
            let rhs = self.unary()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    /// `("-" | "+") unary | power`
    fn unary(&mut self) -> Result<Expr, CalcError> {
        if self.eat(&Token::Op(BinOp::Sub)) {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.eat(&Token::Op(BinOp::Add)) {
            return self.unary();
        }
        self.power()
    }

    /// `postfix ("^" unary)?`, right-associative.
    fn power(&mut self) -> Result<Expr, CalcError> {
        let base = self.postfix()?;
        if self.eat(&Token::Op(BinOp::Pow)) {
            let exponent = self.unary()?;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    /// `primary ("%" ("of" unary)? | "squared" | "cubed")*`
    fn postfix(&mut self) -> Result<Expr, CalcError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(&Token::Percent) {
                e = if self.eat(&Token::Of) {
                    Expr::PercentOf(Box::new(e), Box::new(self.unary()?))
                } else {
                    Expr::Percent(Box::new(e))
                };
            } else if self.eat(&Token::Squared) {
                e = power_of(e, "2", 2);
            } else if self.eat(&Token::Cubed) {
                e = power_of(e, "3", 3);
            } else {
                return Ok(e);
            }
        }
    }

    /// A number, `( expr )`, or a square root of a postfix operand.
    fn primary(&mut self) -> Result<Expr, CalcError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.malformed("the expression ends where a number should be".into()));
        };
        self.at += 1;
        match token {
            Token::Number(text, value) => Ok(Expr::Number { text, value }),
            Token::Open => {
                let inner = self.expr()?;
                if !self.eat(&Token::Close) {
                    return Err(self.malformed("a \"(\" is never closed".into()));
                }
                Ok(inner)
            }
            Token::Sqrt => {
                let operand = if self.eat(&Token::Op(BinOp::Sub)) {
                    Expr::Neg(Box::new(self.postfix()?))
                } else {
                    self.postfix()?
                };
                Ok(Expr::Sqrt(Box::new(operand)))
            }
            other => Err(self.malformed(format!("expected a number, found {other}"))),
        }
    }
}

/// `e^n` for `squared` and `cubed`.
fn power_of(e: Expr, text: &str, n: i128) -> Expr {
    let exponent = Expr::Number {
        text: text.into(),
        value: Rational::integer(n),
    };
    Expr::Binary(BinOp::Pow, Box::new(e), Box::new(exponent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(input: &str) -> String {
        calculate(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .answer()
    }

    #[test]
    fn exact_fractions_and_decimals() {
        assert_eq!(answer("1/2 + 1/4"), "3/4");
        assert_eq!(answer("0.1 + 0.2"), "0.3");
        assert_eq!(answer("7*8"), "56");
        assert_eq!(answer("2/3 - 1/6"), "1/2");
        assert_eq!(answer("1.5 * 4"), "6");
        assert_eq!(answer("1/3 + 0.5"), "5/6");
        assert_eq!(answer(".25 + 1"), "1.25");
        assert_eq!(answer("1,000 * 3"), "3000");
        assert_eq!(answer("10 / 4"), "5/2");
        assert_eq!(answer("-3 - -4"), "1");
    }

    #[test]
    fn words_and_symbols_students_type() {
        for (input, expected) in [
            ("7 times 8", "56"),
            ("7 x 8", "56"),
            ("7x8", "56"),
            ("7 × 8", "56"),
            ("12 divided by 4", "3"),
            ("12 ÷ 5", "12/5"),
            ("3 plus 4 minus 10", "-3"),
            ("6 multiplied by 7", "42"),
            ("3 over 4", "3/4"),
            ("2^10", "1024"),
            ("2**10", "1024"),
            ("2 to the power of 3", "8"),
            ("5 squared", "25"),
            ("2 cubed", "8"),
            ("sqrt(144)", "12"),
            ("√81", "9"),
            ("square root of (9/16)", "3/4"),
            ("square root of 9/16", "3/16"),
            ("the square root of 169", "13"),
            ("15% of 80", "12"),
            ("12.5% of 10", "1.25"),
            ("50 percent of 30", "15"),
            ("2(3 + 4)", "14"),
            ("(1 + 2) * (3 + 4)", "21"),
            ("2^-2", "1/4"),
            ("-2^2", "-4"),
            ("2^3^2", "512"),
        ] {
            assert_eq!(answer(input), expected, "{input}");
        }
    }

    #[test]
    fn canonical_form() {
        for (input, canonical) in [
            ("7 times 8", "7*8"),
            ("1/2 + 1/4", "1/2 + 1/4"),
            ("square root of 144", "sqrt(144)"),
            ("15% of 80", "15% of 80"),
            ("(1+2)*3", "(1 + 2)*3"),
            ("8 - (2 - 1)", "8 - (2 - 1)"),
            ("(-2)^2", "(-2)^2"),
            ("5 squared", "5^2"),
        ] {
            assert_eq!(parse(input).unwrap().to_string(), canonical, "{input}");
        }
        let again = |s: &str| parse(&parse(s).unwrap().to_string()).unwrap().to_string();
        assert_eq!(again("2 - (3 - 4) / (5 * 6)"), "2 - (3 - 4)/(5*6)");
    }

    #[test]
    fn summary_line() {
        assert_eq!(calculate("7 times 8").unwrap().summary(), "7*8 = 56");
        assert_eq!(
            calculate("1/2 + 1/4").unwrap().summary(),
            "1/2 + 1/4 = 3/4 = 0.75"
        );
        assert_eq!(calculate("1/3").unwrap().summary(), "1/3 = 1/3 ≈ 0.3333");
        assert_eq!(calculate("0.1+0.2").unwrap().summary(), "0.1 + 0.2 = 0.3");
    }

    #[test]
    fn clear_errors_naming_the_expression() {
        let err = calculate("5 / (2 - 2)").unwrap_err();
        assert_eq!(
            err.to_string(),
            "calculator: `5 / (2 - 2)`: division by zero is undefined"
        );
        assert!(matches!(
            calculate("0^-1"),
            Err(CalcError::DivisionByZero { .. })
        ));
        let err = calculate("sqrt(2)").unwrap_err();
        assert_eq!(
            err.to_string(),
            "calculator: `sqrt(2)`: the square root of 2 is not exact"
        );
        assert!(matches!(
            calculate("√-4"),
            Err(CalcError::NegativeRoot { .. })
        ));
        assert!(matches!(
            calculate("4^(1/2)"),
            Err(CalcError::FractionalPower { .. })
        ));
        assert!(matches!(
            calculate("10^100"),
            Err(CalcError::Overflow { .. })
        ));
        for bad in ["", "3 +", "(1 + 2", "2 apples + 3", "1 2", "3 $ 4", "* 4"] {
            let err = calculate(bad).unwrap_err();
            assert!(matches!(err, CalcError::Malformed { .. }), "{bad}: {err}");
            assert!(
                err.to_string().contains(&format!("`{}`", bad.trim())),
                "{err}"
            );
        }
        assert!(calculate("2 apples")
            .unwrap_err()
            .to_string()
            .contains("unexpected word \"apples\""));
    }
}
