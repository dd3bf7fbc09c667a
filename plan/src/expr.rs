//! The condition language of triggers.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := operand (("<" | "<=" | ">" | ">=" | "==" | "!=") operand)?
//! operand := NUMBER UNIT? | "true" | "false" | CALL | IDENT | "(" expr ")"
//! CALL    := "pass" | "marginal" | "fail" | "inconclusive"
//! UNIT    := "%" | "ms" | "s" | "m" | "h"
//! ```
//!
//! A CALL is a verdict of the canary judge, the value of a canary signal
//! (`canary_latency == fail`). Numbers with units are normalised: `5%` is `0.05`, durations are seconds
//! (`2000ms` is `2.0`). Signals carry values in the same base units (ratios,
//! seconds), so `p95_latency > 2000ms` compares seconds with seconds.
//!
//! Evaluation is three-valued: a signal with no fresh value is *unknown*, and
//! unknown is never taken as healthy. `and`/`or` follow Kleene logic (`false
//! and unknown` is false, `true or unknown` is true, otherwise unknown).

use std::collections::BTreeSet;
use std::fmt;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Bool(bool),
    Signal(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        })
    }
}

/// A parse error with the byte offset where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {}: {message}", .offset + 1)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// A value a signal has now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The result of evaluating a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn from_bool(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(Op),
    LParen,
    RParen,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_')
            {
                i += 1;
            }
            let digits: String = text[start..i].chars().filter(|&c| c != '_').collect();
            let mut value: f64 = digits.parse().map_err(|_| ParseError {
                offset: start,
                message: format!("`{}` is not a number", &text[start..i]),
            })?;
            // An optional unit, glued to the number.
            let unit_start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'%') {
                i += 1;
            }
            match &text[unit_start..i] {
                "" => {}
                "%" => value /= 100.0,
                "ms" => value /= 1000.0,
                "s" => {}
                "m" => value *= 60.0,
                "h" => value *= 3600.0,
                other => {
                    return Err(ParseError {
                        offset: unit_start,
                        message: format!("unknown unit `{other}` (use %, ms, s, m or h)"),
                    });
                }
            }
            tokens.push((start, Token::Number(value)));
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            tokens.push((start, Token::Ident(text[start..i].to_string())));
        } else {
            let two = text.get(i..i + 2).unwrap_or("");
            let (token, len) = match (c, two) {
                (_, "<=") => (Token::Op(Op::Le), 2),
                (_, ">=") => (Token::Op(Op::Ge), 2),
                (_, "==") => (Token::Op(Op::Eq), 2),
                (_, "!=") => (Token::Op(Op::Ne), 2),
                ('<', _) => (Token::Op(Op::Lt), 1),
                ('>', _) => (Token::Op(Op::Gt), 1),
                ('(', _) => (Token::LParen, 1),
                (')', _) => (Token::RParen, 1),
                _ => {
                    return Err(ParseError {
                        offset: start,
                        message: format!("unexpected `{c}`"),
                    });
                }
            };
            i += len;
            tokens.push((start, token));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand()?;
        if let Some(Token::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(Expr::Number(n))
            }
            Some(Token::Ident(word)) => match word.as_str() {
                "true" | "false" => {
                    self.pos += 1;
                    Ok(Expr::Bool(word == "true"))
                }
                "and" | "or" | "not" => self.error(format!("expected a value, found `{word}`")),
                // The canary judge's calls, as its signals' values.
                _ if crate::judge::Call::from_word(&word).is_some() => {
                    self.pos += 1;
                    Ok(Expr::Number(
                        crate::judge::Call::from_word(&word).map_or(0.0, |c| c.code()),
                    ))
                }
                _ => {
                    self.pos += 1;
                    Ok(Expr::Signal(word))
                }
            },
            Some(Token::LParen) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::RParen) {
                    return self.error("expected `)`");
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::RParen) => self.error("unexpected `)`"),
            Some(Token::Op(op)) => self.error(format!("expected a value before `{op}`")),
            None => self.error("expected a value, found the end of the condition"),
        }
    }
}

impl Expr {
    /// Parses a condition.
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(ParseError {
                offset: 0,
                message: "the condition is empty".into(),
            });
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            end: text.len(),
        };
        let expr = parser.or()?;
        if parser.pos < parser.tokens.len() {
            return parser.error("expected `and`, `or` or the end of the condition");
        }
        Ok(expr)
    }

    /// Every signal the condition reads.
    pub fn signals(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Signal(name) => {
                out.insert(name.clone());
            }
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(a, _, b) => {
                a.collect(out);
                b.collect(out);
            }
            Expr::Number(_) | Expr::Bool(_) => {}
        }
    }

    /// Evaluates with `lookup` giving each signal's current value (None: unknown).
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Truth {
        match self.value(lookup) {
            Some(Value::Bool(b)) => Truth::from_bool(b),
            // A bare number is true when non-zero (a counter "breach_confirmed = 1").
            Some(Value::Number(n)) => Truth::from_bool(n != 0.0),
            None => Truth::Unknown,
        }
    }

    fn value(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Option<Value> {
        match self {
            Expr::Number(n) => Some(Value::Number(*n)),
            Expr::Bool(b) => Some(Value::Bool(*b)),
            Expr::Signal(name) => lookup(name),
            Expr::Not(e) => match e.eval(lookup) {
                Truth::True => Some(Value::Bool(false)),
                Truth::False => Some(Value::Bool(true)),
                Truth::Unknown => None,
            },
            Expr::And(a, b) => match (a.eval(lookup), b.eval(lookup)) {
                (Truth::False, _) | (_, Truth::False) => Some(Value::Bool(false)),
                (Truth::True, Truth::True) => Some(Value::Bool(true)),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(lookup), b.eval(lookup)) {
                (Truth::True, _) | (_, Truth::True) => Some(Value::Bool(true)),
                (Truth::False, Truth::False) => Some(Value::Bool(false)),
                _ => None,
            },
            Expr::Compare(a, op, b) => {
                let (a, b) = (a.value(lookup)?, b.value(lookup)?);
                let as_number = |v: Value| match v {
                    Value::Number(n) => n,
                    Value::Bool(b) => f64::from(u8::from(b)),
                };
                let (x, y) = (as_number(a), as_number(b));
                Some(Value::Bool(match op {
                    Op::Lt => x < y,
                    Op::Le => x <= y,
                    Op::Gt => x > y,
                    Op::Ge => x >= y,
                    Op::Eq => (x - y).abs() < f64::EPSILON,
                    Op::Ne => (x - y).abs() >= f64::EPSILON,
                }))
            }
        }
    }

    /// For `signal OP number` conditions, the threshold, to show next to the
    /// live value ("> 5%"). None for compound conditions.
    pub fn threshold(&self) -> Option<(String, Op, f64)> {
        match self {
            Expr::Compare(a, op, b) => match (a.as_ref(), b.as_ref()) {
                (Expr::Signal(s), Expr::Number(n)) => Some((s.clone(), *op, *n)),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn eval(text: &str, values: &[(&str, Value)]) -> Truth {
        let expr = Expr::parse(text).unwrap();
        expr.eval(&|name| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    #[test]
    fn the_canary_judges_calls_are_words() {
        let expr = Expr::parse("canary == fail").unwrap();
        assert!(!expr.signals().contains("fail"));
        let fail = Value::Number(crate::judge::Call::Fail.code());
        assert_eq!(eval("canary == fail", &[("canary", fail)]), Truth::True);
        assert_eq!(
            eval("canary == marginal", &[("canary", fail)]),
            Truth::False
        );
        assert_eq!(eval("canary == inconclusive", &[]), Truth::Unknown);
    }

    #[test]
    fn units_normalise_to_ratios_and_seconds() {
        assert_eq!(Expr::parse("5%").unwrap(), Expr::Number(0.05));
        assert_eq!(Expr::parse("2000ms").unwrap(), Expr::Number(2.0));
        assert_eq!(Expr::parse("15m").unwrap(), Expr::Number(900.0));
        assert_eq!(Expr::parse("1h").unwrap(), Expr::Number(3600.0));
    }

    #[test]
    fn the_seed_thresholds_evaluate() {
        let n = Value::Number;
        assert_eq!(
            eval("error_rate > 5%", &[("error_rate", n(0.06))]),
            Truth::True
        );
        assert_eq!(
            eval("error_rate > 5%", &[("error_rate", n(0.05))]),
            Truth::False
        );
        assert_eq!(eval("p95 > 2000ms", &[("p95", n(2.5))]), Truth::True);
        assert_eq!(
            eval("critical_tickets > 20", &[("critical_tickets", n(21.0))]),
            Truth::True
        );
        assert_eq!(
            eval(
                "breach_confirmed",
                &[("breach_confirmed", Value::Bool(true))]
            ),
            Truth::True
        );
        assert_eq!(
            eval(
                "breach_confirmed == true and data_exposed",
                &[
                    ("breach_confirmed", Value::Bool(true)),
                    ("data_exposed", Value::Bool(false))
                ]
            ),
            Truth::False
        );
    }

    #[test]
    fn missing_data_is_unknown_never_healthy() {
        assert_eq!(eval("error_rate > 5%", &[]), Truth::Unknown);
        assert_eq!(eval("not (error_rate > 5%)", &[]), Truth::Unknown);
        // Kleene: a known false decides `and`, a known true decides `or`.
        assert_eq!(
            eval("a > 1 and b > 1", &[("a", Value::Number(0.0))]),
            Truth::False
        );
        assert_eq!(
            eval("a > 1 or b > 1", &[("a", Value::Number(2.0))]),
            Truth::True
        );
        assert_eq!(
            eval("a > 1 or b > 1", &[("a", Value::Number(0.0))]),
            Truth::Unknown
        );
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let v = |b| Value::Bool(b);
        assert_eq!(
            eval(
                "a or b and c",
                &[("a", v(true)), ("b", v(false)), ("c", v(false))]
            ),
            Truth::True
        );
        assert_eq!(
            eval(
                "(a or b) and c",
                &[("a", v(true)), ("b", v(false)), ("c", v(false))]
            ),
            Truth::False
        );
        assert_eq!(
            eval("not a and b", &[("a", v(false)), ("b", v(true))]),
            Truth::True
        );
    }

    #[test]
    fn errors_point_at_the_column() {
        let err = Expr::parse("error_rate > 5parsecs").unwrap_err();
        assert_eq!(err.offset, 14, "{err}");
        assert!(err.message.contains("unknown unit `parsecs`"), "{err}");
        let err = Expr::parse("error_rate >").unwrap_err();
        assert!(err.message.contains("end of the condition"), "{err}");
        let err = Expr::parse("(a > 1").unwrap_err();
        assert!(err.message.contains(")"), "{err}");
        let err = Expr::parse("a > 1 b").unwrap_err();
        assert!(err.to_string().starts_with("at column 7"), "{err}");
        assert!(Expr::parse("a $ b").is_err());
        assert!(Expr::parse("").is_err());
    }

    #[test]
    fn thresholds_and_signals_are_reported() {
        let expr = Expr::parse("error_rate > 5%").unwrap();
        assert_eq!(expr.threshold(), Some(("error_rate".into(), Op::Gt, 0.05)));
        let expr = Expr::parse("a > 1 and (b < 2 or c)").unwrap();
        assert_eq!(
            expr.signals().into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
    }

    mod fuzz {
        //! The condition language on hostile text: parse errors with a
        //! column, never a panic; whatever parses evaluates.
        use proptest::prelude::*;

        use super::*;

        fn token() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("error_rate".to_string()),
                Just("p95".to_string()),
                Just("up".to_string()),
                Just("and".to_string()),
                Just("or".to_string()),
                Just("not".to_string()),
                Just("(".to_string()),
                Just(")".to_string()),
                Just(">".to_string()),
                Just(">=".to_string()),
                Just("==".to_string()),
                Just("!=".to_string()),
                Just("<".to_string()),
                Just("5%".to_string()),
                Just("2000ms".to_string()),
                Just("15m".to_string()),
                Just("true".to_string()),
                Just("1e309".to_string()),
                Just("-".to_string()),
                "[0-9]{1,4}(\\.[0-9]{1,3})?",
                ".{0,3}",
            ]
        }

        proptest! {
            #[test]
            fn any_text_parses_or_names_a_column(text in ".{0,120}") {
                if let Err(e) = Expr::parse(&text) {
                    prop_assert!(e.offset <= text.len() + 1, "{e} in {text:?}");
                }
            }

            #[test]
            fn token_soup_parses_or_fails_and_parsed_conditions_evaluate(
                tokens in proptest::collection::vec(token(), 0..24),
                value in any::<f64>(),
                flag in any::<bool>(),
            ) {
                let text = tokens.join(" ");
                if let Ok(expr) = Expr::parse(&text) {
                    let _ = expr.eval(&|name| match name {
                        "up" => Some(Value::Bool(flag)),
                        "p95" => None,
                        _ => Some(Value::Number(value)),
                    });
                    let _ = expr.signals();
                    let _ = expr.threshold();
                }
            }
        }
    }
}
