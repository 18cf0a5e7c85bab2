//! A rule's condition: a SQL boolean expression over a row's columns, parsed
//! with sqlparser once and compiled into a small tree evaluated per row.
//!
//! Supported: `AND`, `OR`, `NOT`, parentheses, `= != <> < <= > >=`,
//! `[NOT] LIKE`, `[NOT] IN (…)`, `[NOT] BETWEEN`, `IS [NOT] NULL`, and
//! `lower()`, `upper()`, `length()`, `trim()` on operands. Anything else is
//! refused when the rule loads, never at match time.
//!
//! Semantics follow SQLite: three-valued logic (a missing column or an empty
//! value, which is how osquery logs NULL, is NULL; a comparison with NULL is
//! unknown; only a true condition matches); values that both look like
//! numbers compare as numbers, since osquery logs every column as a string;
//! LIKE is case-insensitive for ASCII.

use std::collections::BTreeMap;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator, Value,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Column(String),
    Text(String),
    Number(f64),
    Null,
    Lower(Box<Operand>),
    Upper(Box<Operand>),
    Length(Box<Operand>),
    Trim(Box<Operand>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Compare(Operand, Cmp, Operand),
    Like {
        operand: Operand,
        pattern: Operand,
        negated: bool,
    },
    In {
        operand: Operand,
        list: Vec<Operand>,
        negated: bool,
    },
    Between {
        operand: Operand,
        low: Operand,
        high: Operand,
        negated: bool,
    },
    IsNull {
        operand: Operand,
        negated: bool,
    },
    /// A bare operand used as a boolean (`WHERE 1`, `WHERE enabled`).
    Truthy(Operand),
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    root: Node,
}

impl Condition {
    pub fn compile(text: &str) -> Result<Self, String> {
        let dialect = SQLiteDialect {};
        let expr = Parser::new(&dialect)
            .with_recursion_limit(64)
            .try_with_sql(text)
            .and_then(|mut p| {
                let e = p.parse_expr()?;
                p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
                Ok(e)
            })
            .map_err(|e| format!("cannot parse condition: {e}"))?;
        Ok(Self { root: node(&expr)? })
    }

    /// The parsed expression, for [`crate::matcher`] to compile.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Whether the row satisfies the condition (true, not unknown). The
    /// reference evaluator: rules run [`crate::matcher::Matcher`], which a
    /// test holds to this one.
    pub fn matches(&self, row: &BTreeMap<String, String>) -> bool {
        eval(&self.root, row) == Some(true)
    }
}

fn node(e: &Expr) -> Result<Node, String> {
    Ok(match e {
        Expr::Nested(inner) => node(inner)?,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Node::And(Box::new(node(left)?), Box::new(node(right)?)),
            BinaryOperator::Or => Node::Or(Box::new(node(left)?), Box::new(node(right)?)),
            BinaryOperator::Eq => Node::Compare(operand(left)?, Cmp::Eq, operand(right)?),
            BinaryOperator::NotEq => Node::Compare(operand(left)?, Cmp::Ne, operand(right)?),
            BinaryOperator::Lt => Node::Compare(operand(left)?, Cmp::Lt, operand(right)?),
            BinaryOperator::LtEq => Node::Compare(operand(left)?, Cmp::Le, operand(right)?),
            BinaryOperator::Gt => Node::Compare(operand(left)?, Cmp::Gt, operand(right)?),
            BinaryOperator::GtEq => Node::Compare(operand(left)?, Cmp::Ge, operand(right)?),
            other => return Err(format!("operator {other} is not supported in conditions")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Node::Not(Box::new(node(expr)?)),
        Expr::Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        }
        | Expr::ILike {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        } => Node::Like {
            operand: operand(expr)?,
            pattern: operand(pattern)?,
            negated: *negated,
        },
        Expr::InList {
            expr,
            list,
            negated,
        } => Node::In {
            operand: operand(expr)?,
            list: list.iter().map(operand).collect::<Result<_, _>>()?,
            negated: *negated,
        },
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => Node::Between {
            operand: operand(expr)?,
            low: operand(low)?,
            high: operand(high)?,
            negated: *negated,
        },
        Expr::IsNull(e) => Node::IsNull {
            operand: operand(e)?,
            negated: false,
        },
        Expr::IsNotNull(e) => Node::IsNull {
            operand: operand(e)?,
            negated: true,
        },
        other => Node::Truthy(
            operand(other).map_err(|_| format!("`{other}` is not supported in conditions"))?,
        ),
    })
}

fn operand(e: &Expr) -> Result<Operand, String> {
    Ok(match e {
        Expr::Nested(inner) => operand(inner)?,
        // After `(` these two start a subquery, so sqlparser reads a bare one
        // as a column only elsewhere: `select = 'x'` would load but not
        // `NOT (select = 'x')`. SQLite takes neither as a column name.
        Expr::Identifier(id)
            if id.quote_style.is_none()
                && ["select", "with"].contains(&id.value.to_ascii_lowercase().as_str()) =>
        {
            return Err(format!(
                "`{0}` is a keyword: quote a column of that name (\"{0}\")",
                id.value
            ))
        }
        Expr::Identifier(id) => Operand::Column(id.value.clone()),
        // `p.name` in a rule means the column `name`: rows are flat.
        Expr::CompoundIdentifier(ids) => {
            Operand::Column(ids.last().map(|i| i.value.clone()).unwrap_or_default())
        }
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Operand::Text(s.clone()),
            Value::Number(n, _) => {
                Operand::Number(n.parse().map_err(|_| format!("bad number {n}"))?)
            }
            Value::Boolean(b) => Operand::Number(if *b { 1.0 } else { 0.0 }),
            Value::Null => Operand::Null,
            other => return Err(format!("literal {other} is not supported")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match operand(expr)? {
            Operand::Number(n) => Operand::Number(-n),
            _ => return Err(format!("cannot negate `{expr}`")),
        },
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let arg = match &f.args {
                FunctionArguments::List(list) if list.args.len() == 1 => match &list.args[0] {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => operand(e)?,
                    _ => return Err(format!("bad argument to {name}()")),
                },
                _ => return Err(format!("{name}() takes one argument")),
            };
            let arg = Box::new(arg);
            match name.as_str() {
                "lower" => Operand::Lower(arg),
                "upper" => Operand::Upper(arg),
                "length" => Operand::Length(arg),
                "trim" => Operand::Trim(arg),
                _ => return Err(format!("function {name}() is not supported in conditions")),
            }
        }
        other => return Err(format!("`{other}` is not supported in conditions")),
    })
}

/// A value during evaluation: NULL, text, or a number.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Text(String),
    Num(f64),
}

impl Val {
    fn as_num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Text(t) => t.trim().parse().ok(),
            Val::Null => None,
        }
    }

    fn as_text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Text(t) => Some(t.clone()),
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{}", *n as i64)),
            Val::Num(n) => Some(n.to_string()),
        }
    }
}

fn value(op: &Operand, row: &BTreeMap<String, String>) -> Val {
    match op {
        Operand::Column(c) => match row.get(c) {
            Some(v) if !v.is_empty() => Val::Text(v.clone()),
            _ => Val::Null,
        },
        Operand::Text(t) => Val::Text(t.clone()),
        Operand::Number(n) => Val::Num(*n),
        Operand::Null => Val::Null,
        Operand::Lower(a) => map_text(value(a, row), |t| t.to_lowercase()),
        Operand::Upper(a) => map_text(value(a, row), |t| t.to_uppercase()),
        Operand::Trim(a) => map_text(value(a, row), |t| t.trim().to_string()),
        Operand::Length(a) => match value(a, row).as_text() {
            Some(t) => Val::Num(t.chars().count() as f64),
            None => Val::Null,
        },
    }
}

fn map_text(v: Val, f: impl Fn(&str) -> String) -> Val {
    match v.as_text() {
        Some(t) => Val::Text(f(&t)),
        None => Val::Null,
    }
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        return None;
    }
    match (a.as_num(), b.as_num()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.as_text()?.cmp(&b.as_text()?)),
    }
}

fn eval(n: &Node, row: &BTreeMap<String, String>) -> Option<bool> {
    use std::cmp::Ordering::*;
    match n {
        Node::And(a, b) => match (eval(a, row), eval(b, row)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Node::Or(a, b) => match (eval(a, row), eval(b, row)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Node::Not(a) => eval(a, row).map(|v| !v),
        Node::Compare(a, cmp, b) => {
            let ord = compare(&value(a, row), &value(b, row))?;
            Some(match cmp {
                Cmp::Eq => ord == Equal,
                Cmp::Ne => ord != Equal,
                Cmp::Lt => ord == Less,
                Cmp::Le => ord != Greater,
                Cmp::Gt => ord == Greater,
                Cmp::Ge => ord != Less,
            })
        }
        Node::Like {
            operand,
            pattern,
            negated,
        } => {
            let text = value(operand, row).as_text()?;
            let pat = value(pattern, row).as_text()?;
            Some(like(&pat, &text) != *negated)
        }
        Node::In {
            operand,
            list,
            negated,
        } => {
            let v = value(operand, row);
            if matches!(v, Val::Null) {
                return None;
            }
            let mut unknown = false;
            for item in list {
                match compare(&v, &value(item, row)) {
                    Some(Equal) => return Some(!*negated),
                    None => unknown = true,
                    _ => {}
                }
            }
            if unknown {
                None
            } else {
                Some(*negated)
            }
        }
        Node::Between {
            operand,
            low,
            high,
            negated,
        } => {
            let v = value(operand, row);
            let lo = compare(&v, &value(low, row))?;
            let hi = compare(&v, &value(high, row))?;
            Some((lo != Less && hi != Greater) != *negated)
        }
        Node::IsNull { operand, negated } => {
            Some(matches!(value(operand, row), Val::Null) != *negated)
        }
        Node::Truthy(op) => match value(op, row) {
            Val::Null => None,
            v => Some(v.as_num().is_some_and(|n| n != 0.0)),
        },
    }
}

use sweep_proto::text::like;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(cond: &str, r: &BTreeMap<String, String>) -> bool {
        Condition::compile(cond)
            .unwrap_or_else(|e| panic!("{cond}: {e}"))
            .matches(r)
    }

    #[test]
    fn evaluates_like_sqlite() {
        let r = row(&[
            ("name", "bash"),
            ("remote_address", "61.135.169.80"),
            ("remote_port", "443"),
            ("parent_name", "cron"),
            ("empty", ""),
        ]);
        assert!(m("name = 'bash'", &r));
        assert!(m("NAME = 'bash'", &row(&[("NAME", "bash")])));
        assert!(m("name IN ('sh', 'bash') AND remote_port > 0", &r));
        assert!(m("remote_port > 80", &r), "numbers compare as numbers");
        assert!(!m("remote_port > 1000", &r));
        assert!(m(
            "remote_address NOT LIKE '10.%' AND remote_address NOT LIKE '192.168.%'",
            &r
        ));
        assert!(m("upper(name) LIKE 'BA_H'", &r));
        assert!(m("parent_name <> 'sshd'", &r));
        assert!(m("remote_port BETWEEN 400 AND 500", &r));
        assert!(m(
            "empty IS NULL AND missing IS NULL AND name IS NOT NULL",
            &r
        ));
        // Unknown is not true, and NOT unknown is still not true.
        assert!(!m("missing = 'x'", &r));
        assert!(!m("NOT (missing = 'x')", &r));
        assert!(m("missing = 'x' OR name = 'bash'", &r));
        assert!(m("length(name) = 4", &r));
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for bad in [
            "name = ",
            "name = (SELECT 1)",
            "load_extension('x') = 1",
            "name = 'a'; DROP TABLE x",
            "name REGEXP 'x'",
            // Found fuzzing: a bare keyword compiled, but not inside NOT (…).
            "SELECT",
            "with = 'x'",
        ] {
            assert!(Condition::compile(bad).is_err(), "{bad} compiled");
        }
    }

    #[test]
    fn like_backtracks_without_blowing_up() {
        assert!(like("%a%b%c", "xxaxxbxxc"));
        assert!(!like("%a%b%c", "xxaxxbxx"));
        let long = "a".repeat(10_000);
        assert!(!like("%a%a%a%a%b", &long));
    }
}
