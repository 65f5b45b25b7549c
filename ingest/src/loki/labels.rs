//! Parses a stream's labels written as a selector, `{app="mail",
//! site="dc1"}`, the way Loki's push API carries them.

/// The label pairs of `text`, or a message naming what is wrong.
pub fn parse_label_string(text: &str) -> Result<Vec<(String, String)>, String> {
    let err = |what: &str| format!("invalid stream labels {text:?}: {what}");
    let s = text.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| err("expected {name=\"value\", ...}"))?;
    let b = inner.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && (b[i] as char).is_whitespace() {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let name = &inner[start..i];
        if name.is_empty() {
            return Err(err(&format!("expected a label name at offset {}", start + 1)));
        }
        while i < b.len() && (b[i] as char).is_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return Err(err(&format!("expected '=' after label name {name:?}")));
        }
        i += 1;
        while i < b.len() && (b[i] as char).is_whitespace() {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'`')) => q,
            _ => return Err(err(&format!("expected a quoted value for label {name:?}"))),
        };
        i += 1;
        let mut value = String::new();
        let mut closed = false;
        let mut chars = inner[i..].char_indices();
        while let Some((off, c)) = chars.next() {
            if c as u32 == u32::from(quote) {
                i += off + 1;
                closed = true;
                break;
            }
            if c == '\\' && quote == b'"' {
                match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, e @ ('\\' | '"'))) => value.push(e),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => break,
                }
            } else {
                value.push(c);
            }
        }
        if !closed {
            return Err(err(&format!("unterminated value of label {name:?}")));
        }
        out.push((name.to_string(), value));
        while i < b.len() && (b[i] as char).is_whitespace() {
            i += 1;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            None => break,
            Some(_) => return Err(err(&format!("expected ',' or '}}' after the value of {name:?}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_errors_name_the_problem() {
        assert_eq!(
            parse_label_string(r#"{app="mail", site="dc\"1"}"#).expect("parses"),
            vec![("app".into(), "mail".into()), ("site".into(), "dc\"1".into())]
        );
        assert_eq!(parse_label_string("{}").expect("parses"), vec![]);
        assert_eq!(
            parse_label_string("{a=`x`,}").expect("parses"),
            vec![("a".into(), "x".into())]
        );
        let e = parse_label_string(r#"{app=mail}"#).unwrap_err();
        assert!(e.contains("expected a quoted value for label \"app\""), "{e}");
        assert!(parse_label_string(r#"app="x""#).is_err());
        assert!(parse_label_string(r#"{app="x"#).is_err());
    }
}
