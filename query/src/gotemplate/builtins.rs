//! Go's `text/template` built-in functions: `not`, `eq`…`ge`, `len`,
//! `index`, `print`, `println`, `printf`, `html`, `js`, `urlquery`
//! (`and` and `or` are evaluated lazily by the executor).

use std::cmp::Ordering;

use super::CallError;
use super::gofmt::{sprint, sprintf, sprintln};
use super::value::Value;

type R = Result<Value, CallError>;

/// Names of the built-ins (with `and` and `or`).
pub const NAMES: &[&str] = &[
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "println", "printf", "html", "js",
    "urlquery",
];

/// Calls built-in `name`; [`CallError::Unknown`] when it is not one.
pub fn call(name: &str, args: Vec<Value>) -> R {
    match name {
        "not" => {
            nargs(&args, 1, name)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "eq" => {
            if args.len() < 2 {
                return Err(fail("missing argument for comparison"));
            }
            for b in &args[1..] {
                if compare(&args[0], b)? == Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            nargs(&args, 2, name)?;
            if name != "ne" && matches!(args[0], Value::Bool(_)) {
                return Err(fail("invalid type for comparison"));
            }
            let o = compare(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "ne" => o != Ordering::Equal,
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        "len" => {
            nargs(&args, 1, name)?;
            Ok(Value::Int(match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => return Err(fail(format!("len of type {}", other.kind()))),
            } as i64))
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it
                .next()
                .ok_or_else(|| fail("wrong number of args for index: want at least 1 got 0"))?;
            for k in it {
                v = match (v, &k) {
                    (Value::Map(mut m), Value::Str(key)) => m.remove(key).unwrap_or(Value::Str(String::new())),
                    (Value::List(l), Value::Int(i)) => l
                        .get(*i as usize)
                        .cloned()
                        .ok_or_else(|| fail(format!("index out of range: {i}")))?,
                    (other, _) => return Err(fail(format!("can't index item of type {}", other.kind()))),
                };
            }
            Ok(v)
        }
        "print" => Ok(Value::Str(sprint(&args))),
        "println" => Ok(Value::Str(sprintln(&args))),
        "printf" => {
            let Some((format, rest)) = args.split_first() else {
                return Err(fail("wrong number of args for printf: want at least 1 got 0"));
            };
            Ok(Value::Str(sprintf(string(format)?, rest)))
        }
        "html" => Ok(Value::Str(html_escape(&sprint(&args)))),
        "js" => Ok(Value::Str(js_escape(&sprint(&args)))),
        "urlquery" => Ok(Value::Str(
            form_urlencoded::byte_serialize(sprint(&args).as_bytes()).collect(),
        )),
        _ => Err(CallError::Unknown),
    }
}

/// A failed call with `msg`.
pub fn fail(msg: impl Into<String>) -> CallError {
    CallError::Failed(msg.into())
}

/// Fails unless exactly `n` arguments were given.
pub fn nargs(args: &[Value], n: usize, name: &str) -> Result<(), CallError> {
    if args.len() != n {
        return Err(fail(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// The argument as a string, or a Go-style type error.
pub fn string(v: &Value) -> Result<&str, CallError> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(fail(format!(
            "wrong type for value; expected string; got {}",
            other.kind()
        ))),
    }
}

/// Go's comparison of two template values.
pub fn compare(a: &Value, b: &Value) -> Result<Ordering, CallError> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Less),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Nil, Value::Nil) => Ordering::Equal,
        (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => {
            return Err(fail("invalid type for comparison"));
        }
        _ => return Err(fail("incompatible types for comparison")),
    })
}

/// Go's `html` escaping.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `js` escaping.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}
