//! Templates of `line_format` and `label_format`: Go's `text/template`
//! with Loki's functions. The data is the entry's labels (`.level`);
//! `__line__` and `__timestamp__` are functions.

use std::collections::BTreeMap;

use regex::Regex;

use crate::gotemplate::builtins::{fail, nargs, string};
use crate::gotemplate::{CallError, Functions, Template, Value};

/// Loki's template functions (besides Go's built-ins).
pub const NAMES: &[&str] = &[
    "__line__",
    "__timestamp__",
    "ToLower",
    "ToUpper",
    "Replace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "lower",
    "upper",
    "title",
    "trunc",
    "substr",
    "replace",
    "repeat",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "indent",
    "nindent",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "default",
    "count",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
    "alignLeft",
    "alignRight",
    "urlencode",
    "urldecode",
    "int",
    "float64",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
];

/// Checks that `text` parses as a template with Loki's functions.
pub fn check(text: &str) -> Result<(), String> {
    Template::parse("line", text, &|n| NAMES.contains(&n)).map(|_| ())
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct LineTemplate(Template);

impl LineTemplate {
    /// Compiles `text`.
    pub fn new(text: &str) -> Result<Self, String> {
        Template::parse("line", text, &|n| NAMES.contains(&n)).map(LineTemplate)
    }

    /// Renders for one entry.
    pub fn render(&self, labels: &BTreeMap<String, String>, line: &str, ts_ns: i64) -> Result<String, String> {
        let data = Value::Map(labels.iter().map(|(k, v)| (k.clone(), Value::Str(v.clone()))).collect());
        self.0.render(&data, &mut LokiFunctions { line, ts_ns })
    }
}

struct LokiFunctions<'a> {
    line: &'a str,
    ts_ns: i64,
}

fn s(v: &str) -> Result<Value, CallError> {
    Ok(Value::Str(v.to_string()))
}

fn num(v: &Value) -> Result<f64, CallError> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Str(x) => x
            .trim()
            .parse::<f64>()
            .map_err(|_| fail(format!("cannot convert {x:?} to a number"))),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        other => Err(fail(format!("cannot convert {} to a number", other.kind()))),
    }
}

fn int(v: &Value) -> Result<i64, CallError> {
    num(v).map(|f| f as i64)
}

fn text(v: &Value) -> String {
    match v {
        Value::Str(x) => x.clone(),
        other => crate::gotemplate::gofmt::fmt_v(other),
    }
}

fn number_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

impl Functions for LokiFunctions<'_> {
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, CallError> {
        let a = &args;
        match name {
            "__line__" => s(self.line),
            "__timestamp__" => Ok(Value::Int(self.ts_ns)),
            "unixEpoch" => Ok(Value::Int(self.ts_ns.div_euclid(1_000_000_000))),
            "unixEpochMillis" => Ok(Value::Int(self.ts_ns.div_euclid(1_000_000))),
            "unixEpochNanos" => Ok(Value::Int(self.ts_ns)),
            "ToLower" | "lower" => {
                nargs(a, 1, name)?;
                s(&text(&a[0]).to_lowercase())
            }
            "ToUpper" | "upper" => {
                nargs(a, 1, name)?;
                s(&text(&a[0]).to_uppercase())
            }
            "title" => {
                nargs(a, 1, name)?;
                let mut out = String::new();
                let mut prev_letter = false;
                for c in text(&a[0]).chars() {
                    if prev_letter {
                        out.push(c);
                    } else {
                        out.extend(c.to_uppercase());
                    }
                    prev_letter = c.is_alphanumeric();
                }
                s(&out)
            }
            // Go's strings.Replace(s, old, new, n).
            "Replace" => {
                nargs(a, 4, name)?;
                let n = int(&a[3])?;
                let (src, old, new) = (text(&a[0]), text(&a[1]), text(&a[2]));
                s(&if n < 0 {
                    src.replace(&old, &new)
                } else {
                    src.replacen(&old, &new, n as usize)
                })
            }
            // Sprig's replace(old, new, s) (pipeline order).
            "replace" => {
                nargs(a, 3, name)?;
                s(&text(&a[2]).replace(&text(&a[0]), &text(&a[1])))
            }
            "Trim" => {
                nargs(a, 2, name)?;
                let cut = text(&a[1]);
                s(text(&a[0]).trim_matches(|c| cut.contains(c)))
            }
            "trimAll" => {
                nargs(a, 2, name)?;
                let cut = text(&a[0]);
                s(text(&a[1]).trim_matches(|c| cut.contains(c)))
            }
            "TrimLeft" => {
                nargs(a, 2, name)?;
                let cut = text(&a[1]);
                s(text(&a[0]).trim_start_matches(|c| cut.contains(c)))
            }
            "TrimRight" => {
                nargs(a, 2, name)?;
                let cut = text(&a[1]);
                s(text(&a[0]).trim_end_matches(|c| cut.contains(c)))
            }
            "TrimPrefix" => {
                nargs(a, 2, name)?;
                let (x, p) = (text(&a[0]), text(&a[1]));
                s(x.strip_prefix(p.as_str()).unwrap_or(&x))
            }
            "trimPrefix" => {
                nargs(a, 2, name)?;
                let (p, x) = (text(&a[0]), text(&a[1]));
                s(x.strip_prefix(p.as_str()).unwrap_or(&x))
            }
            "TrimSuffix" => {
                nargs(a, 2, name)?;
                let (x, p) = (text(&a[0]), text(&a[1]));
                s(x.strip_suffix(p.as_str()).unwrap_or(&x))
            }
            "trimSuffix" => {
                nargs(a, 2, name)?;
                let (p, x) = (text(&a[0]), text(&a[1]));
                s(x.strip_suffix(p.as_str()).unwrap_or(&x))
            }
            "TrimSpace" | "trim" => {
                nargs(a, 1, name)?;
                s(text(&a[0]).trim())
            }
            "trunc" => {
                nargs(a, 2, name)?;
                let n = int(&a[0])?;
                let chars: Vec<char> = text(&a[1]).chars().collect();
                let out: String = if n >= 0 {
                    chars.iter().take(n as usize).collect()
                } else {
                    chars[chars.len().saturating_sub(n.unsigned_abs() as usize)..]
                        .iter()
                        .collect()
                };
                s(&out)
            }
            "substr" => {
                nargs(a, 3, name)?;
                let (start, end) = (int(&a[0])?, int(&a[1])?);
                let chars: Vec<char> = text(&a[2]).chars().collect();
                let len = chars.len() as i64;
                let start = start.clamp(0, len) as usize;
                let end = if end < 0 || end > len {
                    len as usize
                } else {
                    end as usize
                };
                s(&chars[start.min(end)..end].iter().collect::<String>())
            }
            "repeat" => {
                nargs(a, 2, name)?;
                let n = int(&a[0])?.clamp(0, 10_000) as usize;
                s(&text(&a[1]).repeat(n))
            }
            "contains" => {
                nargs(a, 2, name)?;
                Ok(Value::Bool(text(&a[1]).contains(&text(&a[0]))))
            }
            "hasPrefix" => {
                nargs(a, 2, name)?;
                Ok(Value::Bool(text(&a[1]).starts_with(&text(&a[0]))))
            }
            "hasSuffix" => {
                nargs(a, 2, name)?;
                Ok(Value::Bool(text(&a[1]).ends_with(&text(&a[0]))))
            }
            "indent" | "nindent" => {
                nargs(a, 2, name)?;
                let pad = " ".repeat(int(&a[0])?.clamp(0, 1000) as usize);
                let body = text(&a[1])
                    .lines()
                    .map(|l| format!("{pad}{l}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                s(&if name == "nindent" { format!("\n{body}") } else { body })
            }
            "regexReplaceAll" | "regexReplaceAllLiteral" => {
                nargs(a, 3, name)?;
                let re = Regex::new(string(&a[0])?).map_err(|e| fail(format!("invalid regular expression: {e}")))?;
                let (input, repl) = (text(&a[2]), text(&a[1]));
                s(&if name == "regexReplaceAll" {
                    re.replace_all(&input, repl.as_str()).into_owned()
                } else {
                    re.replace_all(&input, regex::NoExpand(&repl)).into_owned()
                })
            }
            "default" => {
                nargs(a, 2, name)?;
                Ok(if a[1].truthy() { a[1].clone() } else { a[0].clone() })
            }
            "count" => {
                nargs(a, 2, name)?;
                let re = Regex::new(string(&a[0])?).map_err(|e| fail(format!("invalid regular expression: {e}")))?;
                Ok(Value::Int(re.find_iter(&text(&a[1])).count() as i64))
            }
            "alignLeft" | "alignRight" => {
                nargs(a, 2, name)?;
                let n = int(&a[0])?.clamp(0, 100_000) as usize;
                let t: Vec<char> = text(&a[1]).chars().collect();
                let out: String = if t.len() >= n {
                    if name == "alignLeft" {
                        t[..n].iter().collect()
                    } else {
                        t[t.len() - n..].iter().collect()
                    }
                } else if name == "alignLeft" {
                    format!("{}{}", t.iter().collect::<String>(), " ".repeat(n - t.len()))
                } else {
                    format!("{}{}", " ".repeat(n - t.len()), t.iter().collect::<String>())
                };
                s(&out)
            }
            "urlencode" => {
                nargs(a, 1, name)?;
                s(&form_urlencoded::byte_serialize(text(&a[0]).as_bytes()).collect::<String>())
            }
            "urldecode" => {
                nargs(a, 1, name)?;
                let t = text(&a[0]);
                let decoded: String = form_urlencoded::parse(format!("x={t}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                s(&decoded)
            }
            "int" => {
                nargs(a, 1, name)?;
                Ok(Value::Int(int(&a[0]).unwrap_or(0)))
            }
            "float64" => {
                nargs(a, 1, name)?;
                Ok(Value::Float(num(&a[0]).unwrap_or(0.0)))
            }
            "add" | "sub" | "mul" | "div" | "mod" | "max" | "min" => {
                if a.len() < 2 {
                    return Err(fail(format!(
                        "wrong number of args for {name}: want at least 2 got {}",
                        a.len()
                    )));
                }
                let mut acc = num(&a[0])?;
                for v in &a[1..] {
                    let x = num(v)?;
                    acc = match name {
                        "add" => acc + x,
                        "sub" => acc - x,
                        "mul" => acc * x,
                        "div" if x == 0.0 => return Err(fail("division by zero")),
                        "div" => (acc / x).trunc(),
                        "mod" if x == 0.0 => return Err(fail("division by zero")),
                        "mod" => acc % x,
                        "max" => acc.max(x),
                        _ => acc.min(x),
                    };
                }
                Ok(number_value(acc))
            }
            _ => Err(CallError::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, labels: &[(&str, &str)], line: &str) -> String {
        let l: BTreeMap<String, String> = labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        LineTemplate::new(t)
            .expect("parses")
            .render(&l, line, 1_700_000_000_123_000_000)
            .expect("renders")
    }

    #[test]
    fn loki_functions() {
        assert_eq!(
            render("{{.level | ToUpper}} {{.msg}}", &[("level", "warn"), ("msg", "hi")], ""),
            "WARN hi"
        );
        assert_eq!(render("{{ __line__ | trunc 3 }}", &[], "abcdef"), "abc");
        assert_eq!(render("{{ unixEpoch }}", &[], ""), "1700000000");
        assert_eq!(
            render(r#"{{ regexReplaceAll "(\\d+)" "N" .p }}"#, &[("p", "/u/123")], ""),
            "/u/N"
        );
        assert_eq!(render(r#"{{ .missing | default "none" }}"#, &[], ""), "none");
        assert_eq!(
            render(
                r#"{{ if eq .status "500" }}bad{{ else }}ok{{ end }}"#,
                &[("status", "500")],
                ""
            ),
            "bad"
        );
        assert_eq!(render(r#"{{ div .b 1024 }}"#, &[("b", "4096")], ""), "4");
        assert_eq!(
            render(r#"{{ alignRight 5 .x }}|{{ alignLeft 2 .x }}"#, &[("x", "ab")], ""),
            "   ab|ab"
        );
        assert!(
            check("{{ nosuch 1 }}")
                .unwrap_err()
                .contains("function \"nosuch\" not defined")
        );
    }
}
