//! Loki's pattern expressions (`<ip> - - [<_>] "<method> <path> <_>"`):
//! literals and captures, used by the `pattern` parser and the `|>`
//! line filter, with Loki's matching rules.

/// One part of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(String),
    /// A capture; `None` for `<_>`.
    Capture(Option<String>),
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    nodes: Vec<Node>,
}

impl Pattern {
    /// Parses `text`; captures are `<name>` with a label name, `<_>`
    /// skips. Two captures in a row are refused (nothing separates them).
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut nodes = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<')
                && let Some(end) = after.find('>')
            {
                let name = &after[..end];
                let valid = name == "_"
                    || (!name.is_empty()
                        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                if valid {
                    if !lit.is_empty() {
                        nodes.push(Node::Literal(std::mem::take(&mut lit)));
                    }
                    if matches!(nodes.last(), Some(Node::Capture(_))) {
                        return Err(format!("invalid pattern {text:?}: found consecutive captures"));
                    }
                    nodes.push(Node::Capture((name != "_").then(|| name.to_string())));
                    rest = &after[end + 1..];
                    continue;
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            nodes.push(Node::Literal(lit));
        }
        if !nodes.iter().any(|n| matches!(n, Node::Capture(_))) {
            return Err(format!("invalid pattern {text:?}: at least one capture is required"));
        }
        Ok(Pattern {
            text: text.to_string(),
            nodes,
        })
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Names of the named captures.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Capture(Some(name)) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The named captures of `line` (the `pattern` parser): a leading
    /// literal must start the line; a capture whose following literal is
    /// missing takes the rest of the line.
    pub fn captures<'a>(&self, line: &'a str) -> Vec<(&str, &'a str)> {
        let mut out = Vec::new();
        if line.is_empty() {
            return out;
        }
        let mut input = line;
        let mut nodes = self.nodes.as_slice();
        if let Some(Node::Literal(l)) = nodes.first() {
            if !input.starts_with(l.as_str()) {
                return out;
            }
            input = &input[l.len()..];
            nodes = &nodes[1..];
        }
        while !nodes.is_empty() {
            let Node::Capture(name) = &nodes[0] else { return out };
            let Some(Node::Literal(l)) = nodes.get(1) else {
                if let Some(n) = name {
                    out.push((n.as_str(), input));
                }
                return out;
            };
            nodes = &nodes[2..];
            match input.find(l.as_str()) {
                None => {
                    if let Some(n) = name {
                        out.push((n.as_str(), input));
                    }
                    return out;
                }
                Some(i) => {
                    if let Some(n) = name {
                        out.push((n.as_str(), &input[..i]));
                    }
                    input = &input[i + l.len()..];
                }
            }
        }
        out
    }

    /// True when the whole line has the pattern's shape (the `|>` filter).
    pub fn test(&self, line: &str) -> bool {
        if line.is_empty() {
            return false;
        }
        let mut input = line;
        let mut nodes = self.nodes.as_slice();
        if let Some(Node::Literal(l)) = nodes.first() {
            if !input.starts_with(l.as_str()) {
                return false;
            }
            input = &input[l.len()..];
            nodes = &nodes[1..];
        }
        while !nodes.is_empty() {
            let Some(Node::Literal(l)) = nodes.get(1) else {
                return true;
            };
            nodes = &nodes[2..];
            match input.find(l.as_str()) {
                None => return false,
                Some(i) => input = &input[i + l.len()..],
            }
        }
        input.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_tests_follow_loki() {
        let p = Pattern::parse(r#"<ip> - - [<_>] "<method> <path> <_>" <status> <size>"#).expect("parses");
        let line = r#"10.0.0.1 - - [26/Nov/2026:10:00:00 +0000] "GET /index.html HTTP/1.1" 200 512"#;
        assert_eq!(
            p.captures(line),
            vec![
                ("ip", "10.0.0.1"),
                ("method", "GET"),
                ("path", "/index.html"),
                ("status", "200"),
                ("size", "512")
            ]
        );
        assert!(p.test(line));
        let q = Pattern::parse("level=<level> msg").expect("parses");
        assert!(!q.test("xlevel=info msg"));
        assert!(q.test("level=info msg"));
        assert!(!q.test("level=info msg and more"));
        assert!(Pattern::parse("<a><b>").unwrap_err().contains("consecutive"));
        assert!(Pattern::parse("no captures").is_err());
    }
}
