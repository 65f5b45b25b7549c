//! LogQL tokens.

use std::fmt;

/// One token with its byte offset in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: Tok,
    /// Byte offset of its first character.
    pub pos: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or keyword.
    Ident(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A plain number.
    Number(f64),
    /// A duration such as `5m` or `1h30m`, in seconds.
    Duration(f64),
    /// A byte size such as `10KB` or `1.5MiB`, in bytes.
    Bytes(f64),
    /// Punctuation and operators.
    Sym(&'static str),
    /// `--strict` / `--keep-empty` style flags, without the dashes.
    Flag(String),
    /// End of input.
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "{s}"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Number(n) | Tok::Duration(n) | Tok::Bytes(n) => write!(f, "{n}"),
            Tok::Sym(s) => write!(f, "{s}"),
            Tok::Flag(s) => write!(f, "--{s}"),
            Tok::Eof => write!(f, "end of query"),
        }
    }
}

const SYMBOLS: &[&str] = &[
    "|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<=", "{", "}", "(", ")", "[", "]", ",", "=", "|", ">", "<",
    "+", "-", "*", "/", "%", "^",
];

/// Splits `q` into tokens; the error names the offending position.
pub fn lex(q: &str) -> Result<Vec<Token>, String> {
    let b = q.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if c == b'"' || c == b'`' {
            let (s, end) = lex_string(q, i)?;
            out.push(Token {
                kind: Tok::Str(s),
                pos: start,
            });
            i = end;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_some_and(|x| x.is_ascii_alphabetic()) {
            i += 2;
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                kind: Tok::Flag(q[s..i].to_string()),
                pos: start,
            });
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(|x| x.is_ascii_digit())) {
            let (kind, end) = lex_number(q, i)?;
            out.push(Token { kind, pos: start });
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                kind: Tok::Ident(q[start..i].to_string()),
                pos: start,
            });
            continue;
        }
        match SYMBOLS.iter().find(|s| q[i..].starts_with(**s)) {
            Some(s) => {
                out.push(Token {
                    kind: Tok::Sym(s),
                    pos: start,
                });
                i += s.len();
            }
            None => {
                let ch = q[i..].chars().next().unwrap_or('?');
                return Err(format!(
                    "syntax error: unexpected character {ch:?} at position {}",
                    i + 1
                ));
            }
        }
    }
    out.push(Token {
        kind: Tok::Eof,
        pos: q.len(),
    });
    Ok(out)
}

fn lex_string(q: &str, start: usize) -> Result<(String, usize), String> {
    let quote = q.as_bytes()[start];
    let mut out = String::new();
    let mut chars = q[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        if c as u32 == u32::from(quote) {
            return Ok((out, start + 1 + off + 1));
        }
        if c == '\\' && quote == b'"' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, 'a')) => out.push('\u{7}'),
                Some((_, 'b')) => out.push('\u{8}'),
                Some((_, 'f')) => out.push('\u{c}'),
                Some((_, 'v')) => out.push('\u{b}'),
                Some((_, 'u')) => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("syntax error: invalid \\u escape at position {}", start + 1))?;
                    out.push(ch);
                }
                Some((_, other)) => {
                    return Err(format!(
                        "syntax error: unknown escape sequence \\{other} in string at position {}",
                        start + 1
                    ));
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(format!(
        "syntax error: unterminated string starting at position {}",
        start + 1
    ))
}

fn lex_number(q: &str, start: usize) -> Result<(Tok, usize), String> {
    let b = q.as_bytes();
    let mut i = start;
    if q[i..].starts_with("0x") || q[i..].starts_with("0X") {
        i += 2;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let v = i64::from_str_radix(&q[start + 2..i], 16).map_err(|e| format!("syntax error: {e}"))?;
        return Ok((Tok::Number(v as f64), i));
    }
    // Take the whole alphanumeric run: digits, dots, exponents, units.
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == 0xc2 || b[i] == 0xb5) {
        if (b[i] == b'e' || b[i] == b'E') && matches!(b.get(i + 1), Some(b'+' | b'-')) {
            i += 2;
            continue;
        }
        i += 1;
    }
    let text = &q[start..i];
    if let Ok(v) = text.parse::<f64>() {
        return Ok((Tok::Number(v), i));
    }
    if let Some(d) = parse_duration(text) {
        return Ok((Tok::Duration(d), i));
    }
    if let Some(bytes) = parse_bytes(text) {
        return Ok((Tok::Bytes(bytes), i));
    }
    Err(format!(
        "syntax error: invalid number, duration or size {text:?} at position {}",
        start + 1
    ))
}

/// Parses a Go/Prometheus duration (`1h30m`, `250ms`, `1.5s`, `2d`, `1w`,
/// `1y`) into seconds.
pub fn parse_duration(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    let mut any = false;
    let neg = rest.starts_with('-');
    if neg {
        rest = &rest[1..];
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "y" => 31_536_000.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * mult;
        any = true;
    }
    any.then_some(if neg { -total } else { total })
}

/// Parses a byte size as go-humanize does (`10KB`, `1.5MiB`, `42B`,
/// `5kb`).
pub fn parse_bytes(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let n: f64 = t[..split].parse().ok()?;
    let unit = t[split..].trim().to_ascii_lowercase();
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_units_and_errors() {
        let kinds: Vec<Tok> = lex(r#"{a="b"} |= `x\y` | d > 1m30s | s < 10KB --strict"#)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert!(kinds.contains(&Tok::Str("x\\y".into())));
        assert!(kinds.contains(&Tok::Duration(90.0)));
        assert!(kinds.contains(&Tok::Bytes(10_000.0)));
        assert!(kinds.contains(&Tok::Flag("strict".into())));
        assert_eq!(parse_duration("250ms"), Some(0.25));
        assert_eq!(parse_bytes("1.5MiB"), Some(1_572_864.0));
        assert!(lex("\"open").unwrap_err().contains("unterminated string"));
        assert!(lex("{a=\"b\"} ; x").unwrap_err().contains("unexpected character ';'"));
    }
}
