//! osquery's math functions (`osquery/sql/sqlite_math.cpp`): `sqrt`, `log`
//! (natural, as C's `log`; SQLite's own `log` would be base 10), `log10`,
//! `exp`, `power`, the trigonometric ones, `degrees`, `radians`, `pi`, and
//! `ceil`/`floor` (an integer stays itself, anything else becomes an integer).
//! NULL in, NULL out. Where C's libm sets `errno`, osquery fails the query
//! with its message; so do these: a domain error (`sqrt(-1)`, `acos(2)`) or a
//! result out of range (`log(0)`, `exp(1000)`).

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error, Result};

type Unary = fn(f64) -> f64;

/// The one-argument functions: name and what it computes.
const UNARY: &[(&str, Unary)] = &[
    ("sqrt", f64::sqrt),
    ("acos", f64::acos),
    ("asin", f64::asin),
    ("atan", f64::atan),
    ("cos", f64::cos),
    ("sin", f64::sin),
    ("tan", f64::tan),
    ("cot", |x| 1.0 / x.tan()),
    ("exp", f64::exp),
    ("log", f64::ln),
    ("log10", f64::log10),
    ("degrees", f64::to_degrees),
    ("radians", f64::to_radians),
];

/// The names registered here, for the guard's list.
pub const NAMES: &[&str] = &[
    "acos", "asin", "atan", "ceil", "cos", "cot", "degrees", "exp", "floor", "log", "log10", "pi",
    "power", "radians", "sin", "sqrt", "tan",
];

pub fn register(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for &(name, f) in UNARY {
        conn.create_scalar_function(name, 1, flags, move |ctx| {
            let Some(x) = real(ctx, 0) else {
                return Ok(None);
            };
            checked(f(x), &[x]).map(Some)
        })?;
    }
    conn.create_scalar_function("power", 2, flags, |ctx| {
        let (Some(x), Some(y)) = (real(ctx, 0), real(ctx, 1)) else {
            return Ok(None);
        };
        checked(x.powf(y), &[x, y]).map(Some)
    })?;
    conn.create_scalar_function("ceil", 1, flags, |ctx| Ok(whole(ctx, f64::ceil)))?;
    conn.create_scalar_function("floor", 1, flags, |ctx| Ok(whole(ctx, f64::floor)))?;
    conn.create_scalar_function("pi", 0, flags, |_| Ok(std::f64::consts::PI))?;
    Ok(())
}

/// Argument `i` as SQLite's `sqlite3_value_double` reads it; None for NULL.
fn real(ctx: &Context<'_>, i: usize) -> Option<f64> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n as f64),
        ValueRef::Real(r) => Some(r),
        // SQLite reads the longest numeric prefix of a text; none is 0.0.
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(numeric_prefix(t)),
    }
}

fn numeric_prefix(t: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(t);
    let s = s.trim_start();
    (1..=s.len())
        .rev()
        .filter(|&n| s.is_char_boundary(n))
        .find_map(|n| s[..n].parse::<f64>().ok().filter(|v| v.is_finite()))
        .unwrap_or(0.0)
}

/// libm's `errno` outcomes, as osquery reports them: a NaN from numbers is a
/// domain error, an infinity from finite numbers a range error, and so is a
/// result that underflowed to (nearly) zero from a non-zero exact one.
fn checked(result: f64, args: &[f64]) -> Result<f64> {
    let fail = |msg: &str| Err(Error::UserFunctionError(msg.into()));
    if result.is_nan() {
        return fail("Numerical argument out of domain");
    }
    if result.is_infinite() && args.iter().all(|a| a.is_finite()) {
        return fail("Numerical result out of range");
    }
    Ok(result)
}

/// osquery's ceil/floor: an integer is returned as is, anything else
/// rounded and cast to an integer.
fn whole(ctx: &Context<'_>, f: Unary) -> Option<i64> {
    match ctx.get_raw(0) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n),
        _ => real(ctx, 0).map(|x| f(x) as i64),
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;

    fn eval(sql: &str) -> Result<Value> {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.query_row(sql, [], |r| r.get(0))
    }

    fn real(sql: &str) -> f64 {
        match eval(sql).unwrap() {
            Value::Real(r) => r,
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// Values worked out by hand or known constants (not by the same libm
    /// call): √2, e, ln 10, tan(π/4) = 1, 2^10, 180°.
    #[test]
    fn values_match_known_constants() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(real("SELECT sqrt(2)"), std::f64::consts::SQRT_2));
        assert!(close(real("SELECT exp(1)"), std::f64::consts::E));
        assert!(close(real("SELECT log(10)"), std::f64::consts::LN_10));
        assert!(close(real("SELECT log10(1000)"), 3.0));
        assert!(close(real("SELECT log(exp(2.5))"), 2.5));
        assert!(close(real("SELECT tan(pi() / 4)"), 1.0));
        assert!(close(real("SELECT cot(pi() / 4)"), 1.0));
        assert!(close(real("SELECT sin(pi() / 6)"), 0.5));
        assert!(close(real("SELECT cos(pi() / 3)"), 0.5));
        assert!(close(real("SELECT asin(1)"), std::f64::consts::FRAC_PI_2));
        assert!(close(real("SELECT acos(0)"), std::f64::consts::FRAC_PI_2));
        assert!(close(real("SELECT atan(1)"), std::f64::consts::FRAC_PI_4));
        assert!(close(real("SELECT power(2, 10)"), 1024.0));
        assert!(close(real("SELECT power('9', 0.5)"), 3.0));
        assert!(close(real("SELECT degrees(pi())"), 180.0));
        assert!(close(
            real("SELECT radians(90)"),
            std::f64::consts::FRAC_PI_2
        ));
        assert!(close(real("SELECT pi()"), std::f64::consts::PI));
        // Text is read the way SQLite reads numbers: its numeric prefix.
        assert!(close(real("SELECT sqrt('16abc')"), 4.0));
        assert!(close(real("SELECT sqrt('x')"), 0.0));
    }

    #[test]
    fn ceil_and_floor_return_integers_and_keep_integers() {
        assert_eq!(eval("SELECT ceil(1.2)").unwrap(), Value::Integer(2));
        assert_eq!(eval("SELECT floor(-1.2)").unwrap(), Value::Integer(-2));
        assert_eq!(eval("SELECT ceil('2.5')").unwrap(), Value::Integer(3));
        assert_eq!(
            eval("SELECT floor(9223372036854775807)").unwrap(),
            Value::Integer(i64::MAX)
        );
    }

    #[test]
    fn null_in_null_out() {
        for f in [
            "sqrt(NULL)",
            "log(NULL)",
            "power(NULL, 2)",
            "power(2, NULL)",
            "ceil(NULL)",
        ] {
            assert_eq!(eval(&format!("SELECT {f}")).unwrap(), Value::Null, "{f}");
        }
    }

    #[test]
    fn libm_errors_fail_the_query_as_osquery_does() {
        for (sql, msg) in [
            ("SELECT sqrt(-1)", "out of domain"),
            ("SELECT acos(2)", "out of domain"),
            ("SELECT log(-1)", "out of domain"),
            ("SELECT log(0)", "out of range"),
            ("SELECT exp(1000)", "out of range"),
            ("SELECT power(0, -1)", "out of range"),
        ] {
            let err = eval(sql).unwrap_err().to_string();
            assert!(err.contains(msg), "{sql}: {err}");
        }
    }
}
