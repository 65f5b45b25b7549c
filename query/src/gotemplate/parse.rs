//! Parsing Go's `text/template` syntax into a tree: text, actions with
//! pipelines (`{{ $value | humanize }}`), variables, `if`/`else if`/
//! `else`, `range`, `with`, `break`/`continue`, comments and the `{{-`/
//! `-}}` whitespace trimming.

use super::value::Value;

/// A parse error with the 1-based line of the action it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Line in the template text.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Literal text.
    Text(String),
    /// `{{ pipeline }}`: prints the result unless it declares a variable.
    Action(Pipeline),
    /// `{{ if p }}…{{ else if q }}…{{ else }}…{{ end }}`.
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    /// `{{ range p }}…{{ else }}…{{ end }}`.
    Range(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ with p }}…{{ else }}…{{ end }}`.
    With(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ break }}`.
    Break,
    /// `{{ continue }}`.
    Continue,
}

/// `$a, $b := cmd | cmd`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Line of the action.
    pub line: usize,
    /// Declared or assigned variables.
    pub vars: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    /// The commands, each receiving the previous result as last argument.
    pub cmds: Vec<Vec<Operand>>,
}

/// One operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A constant.
    Const(Value),
    /// `.` followed by fields (`.Labels.job`; none for `.` itself).
    Dot(Vec<String>),
    /// `$name` followed by fields (`$` alone is named "").
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// `( pipeline )` followed by fields.
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Const(Value),
    Dot,
    Field(String, bool),
    Var(String),
    Ident(String),
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// Splits an action's inside into tokens.
fn lex_action(src: &str, line: usize) -> Result<Vec<Tok>, ParseError> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let attached = i > 0 && !b[i - 1].is_whitespace();
        match c {
            _ if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if b.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some('\n') => return err(line, "unterminated quoted string"),
                        Some('"') => break,
                        Some('\\') => {
                            let e = b.get(i + 1).copied().unwrap_or('\\');
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Tok::Const(Value::Str(s)));
            }
            '`' => {
                let rest: String = b[i + 1..].iter().collect();
                let Some(end) = rest.find('`') else {
                    return err(line, "unterminated raw quoted string");
                };
                out.push(Tok::Const(Value::Str(rest[..end].to_string())));
                i += 1 + rest[..end].chars().count() + 1;
            }
            '.' if b.get(i + 1).is_some_and(|c| c.is_alphabetic() || *c == '_') => {
                let start = i + 1;
                i = start;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Field(b[start..i].iter().collect(), attached));
            }
            '.' if !b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                out.push(Tok::Dot);
                i += 1;
            }
            '$' => {
                let start = i + 1;
                i = start;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Var(b[start..i].iter().collect()));
            }
            _ if c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i + 1 < b.len()) => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.' || b[i] == '_') {
                    // Exponent signs belong to the number.
                    i += 1;
                    if i < b.len() && (b[i] == '-' || b[i] == '+') && matches!(b[i - 1], 'e' | 'E') {
                        i += 1;
                    }
                }
                let text: String = b[start..i].iter().filter(|c| **c != '_').collect();
                out.push(Tok::Const(parse_number(&text).ok_or(ParseError {
                    line,
                    message: format!("bad number syntax: {text:?}"),
                })?));
            }
            _ if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                let word: String = b[start..i].iter().collect();
                out.push(match word.as_str() {
                    "true" => Tok::Const(Value::Bool(true)),
                    "false" => Tok::Const(Value::Bool(false)),
                    "nil" => Tok::Const(Value::Nil),
                    _ => Tok::Ident(word),
                });
            }
            _ => return err(line, format!("unexpected {c:?} in command")),
        }
    }
    Ok(out)
}

fn parse_number(text: &str) -> Option<Value> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(Value::Int(if neg { -i } else { i }));
    }
    let f: f64 = body.parse().ok().filter(|_| !body.contains(['x', 'X', 'i', 'n']))?;
    Some(Value::Float(if neg { -f } else { f }))
}

struct Tokens {
    toks: Vec<Tok>,
    pos: usize,
    line: usize,
}

impl Tokens {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn fields(&mut self) -> Vec<String> {
        let mut f = Vec::new();
        while let Some(Tok::Field(name, true)) = self.peek() {
            f.push(name.clone());
            self.pos += 1;
        }
        f
    }

    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline, ParseError> {
        let line = self.line;
        let mut vars = Vec::new();
        let mut assign = false;
        if allow_decl {
            // Look ahead for `$x :=`, `$x =` or `$i, $v :=`.
            let save = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(n)) = self.peek() {
                names.push(n.clone());
                self.pos += 1;
                match self.peek() {
                    Some(Tok::Comma) => self.pos += 1,
                    _ => break,
                }
            }
            match self.peek() {
                Some(Tok::Declare) if !names.is_empty() => {
                    self.pos += 1;
                    vars = names;
                }
                Some(Tok::Assign) if !names.is_empty() => {
                    self.pos += 1;
                    vars = names;
                    assign = true;
                }
                _ => self.pos = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let mut cmd = Vec::new();
            while let Some(t) = self.peek() {
                if matches!(t, Tok::Pipe | Tok::RParen) {
                    break;
                }
                cmd.push(self.operand()?);
            }
            if cmd.is_empty() {
                return err(line, "missing value for command");
            }
            cmds.push(cmd);
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                _ => break,
            }
        }
        Ok(Pipeline {
            line,
            vars,
            assign,
            cmds,
        })
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let line = self.line;
        match self.next() {
            Some(Tok::Const(v)) => Ok(Operand::Const(v)),
            Some(Tok::Dot) => Ok(Operand::Dot(self.fields())),
            Some(Tok::Field(name, _)) => {
                let mut f = vec![name];
                f.extend(self.fields());
                Ok(Operand::Dot(f))
            }
            Some(Tok::Var(name)) => Ok(Operand::Var(name, self.fields())),
            Some(Tok::Ident(name)) => Ok(Operand::Func(name)),
            Some(Tok::LParen) => {
                let p = self.pipeline(true)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(Operand::Sub(Box::new(p), self.fields())),
                    _ => err(line, "unclosed left paren"),
                }
            }
            Some(t) => err(line, format!("unexpected {t:?} in operand")),
            None => err(line, "missing operand"),
        }
    }
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else(Option<Pipeline>),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    trim_next: bool,
    depth_loops: usize,
}

impl Parser<'_> {
    /// Next text and action (the inside of `{{ }}`), or the rest as text.
    fn next_piece(&mut self) -> Result<(String, Option<(String, usize)>), ParseError> {
        let rest = &self.src[self.pos..];
        let Some(open) = rest.find("{{") else {
            self.pos = self.src.len();
            let mut text = rest.to_string();
            if std::mem::take(&mut self.trim_next) {
                text = text.trim_start().to_string();
            }
            self.line += rest.matches('\n').count();
            return Ok((text, None));
        };
        let mut text = rest[..open].to_string();
        if std::mem::take(&mut self.trim_next) {
            text = text.trim_start().to_string();
        }
        self.line += rest[..open].matches('\n').count();
        let line = self.line;
        let mut inner_start = open + 2;
        let after = &rest[inner_start..];
        if after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n") {
            text = text.trim_end().to_string();
            inner_start += 1;
        }
        // Find the closing braces outside quoted strings.
        let body = &rest[inner_start..];
        let mut quote: Option<char> = None;
        let mut close = None;
        let mut prev = '\0';
        for (i, c) in body.char_indices() {
            match quote {
                Some(q) if c == q && !(q == '"' && prev == '\\') => quote = None,
                Some(_) => {}
                None if c == '"' || c == '`' => quote = Some(c),
                None if body[i..].starts_with("}}") => {
                    close = Some(i);
                    break;
                }
                None => {}
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
        }
        let Some(close) = close else {
            return err(line, "unclosed action");
        };
        let mut inner = &body[..close];
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            self.trim_next = true;
        }
        self.line += body[..close].matches('\n').count();
        self.pos += inner_start + close + 2;
        Ok((text, Some((inner.to_string(), line))))
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let (text, action) = self.next_piece()?;
            if !text.is_empty() {
                nodes.push(Node::Text(text));
            }
            let Some((inner, line)) = action else {
                return Ok((nodes, Stop::Eof));
            };
            let trimmed = inner.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") {
                    return err(line, "unclosed comment");
                }
                continue;
            }
            let mut toks = Tokens {
                toks: lex_action(&inner, line)?,
                pos: 0,
                line,
            };
            let keyword = match toks.peek() {
                Some(Tok::Ident(w)) => w.clone(),
                None => return err(line, "missing value for command"),
                _ => String::new(),
            };
            match keyword.as_str() {
                "end" => {
                    toks.pos += 1;
                    expect_done(&toks, "end")?;
                    return Ok((nodes, Stop::End));
                }
                "else" => {
                    toks.pos += 1;
                    if toks.peek() == Some(&Tok::Ident("if".into())) {
                        toks.pos += 1;
                        let p = toks.pipeline(true)?;
                        expect_done(&toks, "else if")?;
                        return Ok((nodes, Stop::Else(Some(p))));
                    }
                    expect_done(&toks, "else")?;
                    return Ok((nodes, Stop::Else(None)));
                }
                "if" => {
                    toks.pos += 1;
                    let mut cond = toks.pipeline(true)?;
                    expect_done(&toks, "if")?;
                    let mut branches = Vec::new();
                    let otherwise = loop {
                        let (body, stop) = self.list()?;
                        branches.push((cond, body));
                        match stop {
                            Stop::End => break Vec::new(),
                            Stop::Else(Some(next)) => cond = next,
                            Stop::Else(None) => break self.block_end(line, "if")?,
                            Stop::Eof => return err(line, "unexpected EOF: if without end"),
                        }
                    };
                    nodes.push(Node::If(branches, otherwise));
                }
                "range" | "with" => {
                    toks.pos += 1;
                    let p = toks.pipeline(true)?;
                    expect_done(&toks, &keyword)?;
                    if keyword == "range" {
                        self.depth_loops += 1;
                    }
                    let (body, stop) = self.list()?;
                    if keyword == "range" {
                        self.depth_loops -= 1;
                    }
                    let otherwise = match stop {
                        Stop::End => Vec::new(),
                        Stop::Else(None) => self.block_end(line, &keyword)?,
                        Stop::Else(Some(_)) => return err(line, format!("else if in {keyword}")),
                        Stop::Eof => return err(line, format!("unexpected EOF: {keyword} without end")),
                    };
                    nodes.push(if keyword == "range" {
                        Node::Range(p, body, otherwise)
                    } else {
                        Node::With(p, body, otherwise)
                    });
                }
                "break" | "continue" => {
                    if self.depth_loops == 0 {
                        return err(line, format!("{keyword} outside range"));
                    }
                    toks.pos += 1;
                    expect_done(&toks, &keyword)?;
                    nodes.push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" => {
                    return err(line, format!("{{{{{keyword}}}}} is not supported in rule templates"));
                }
                _ => {
                    let p = toks.pipeline(true)?;
                    if toks.peek().is_some() {
                        return err(line, "unexpected right paren or extra tokens in command");
                    }
                    nodes.push(Node::Action(p));
                }
            }
        }
    }

    /// The `{{ else }}` branch up to `{{ end }}`.
    fn block_end(&mut self, line: usize, what: &str) -> Result<Vec<Node>, ParseError> {
        let (body, stop) = self.list()?;
        match stop {
            Stop::End => Ok(body),
            Stop::Else(_) => err(line, format!("expected end; found else in {what}")),
            Stop::Eof => err(line, format!("unexpected EOF: {what} without end")),
        }
    }
}

fn expect_done(toks: &Tokens, what: &str) -> Result<(), ParseError> {
    match toks.toks.get(toks.pos) {
        Some(t) => err(toks.line, format!("unexpected {t:?} in {what}")),
        None => Ok(()),
    }
}

/// The first function name in `nodes` for which `known` is false, with
/// the line it is on (Go rejects those when parsing).
pub fn unknown_function(nodes: &[Node], known: &dyn Fn(&str) -> bool) -> Option<(usize, String)> {
    fn in_pipe(p: &Pipeline, known: &dyn Fn(&str) -> bool) -> Option<(usize, String)> {
        for cmd in &p.cmds {
            for op in cmd {
                match op {
                    Operand::Func(name) if !known(name) => return Some((p.line, name.clone())),
                    Operand::Sub(inner, _) => {
                        if let Some(x) = in_pipe(inner, known) {
                            return Some(x);
                        }
                    }
                    _ => {}
                }
            }
        }
        None
    }
    for n in nodes {
        let found = match n {
            Node::Action(p) => in_pipe(p, known),
            Node::If(branches, otherwise) => branches
                .iter()
                .find_map(|(p, body)| in_pipe(p, known).or_else(|| unknown_function(body, known)))
                .or_else(|| unknown_function(otherwise, known)),
            Node::Range(p, body, otherwise) | Node::With(p, body, otherwise) => in_pipe(p, known)
                .or_else(|| unknown_function(body, known))
                .or_else(|| unknown_function(otherwise, known)),
            Node::Text(_) | Node::Break | Node::Continue => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Parses a whole template.
pub fn parse(src: &str) -> Result<Vec<Node>, ParseError> {
    let mut p = Parser {
        src,
        pos: 0,
        line: 1,
        trim_next: false,
        depth_loops: 0,
    };
    let (nodes, stop) = p.list()?;
    match stop {
        Stop::Eof => Ok(nodes),
        Stop::End => err(p.line, "unexpected {{end}}"),
        Stop::Else(_) => err(p.line, "unexpected {{else}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelines_and_blocks() {
        let t = parse("a {{ $labels.instance }} {{ if gt $value 1.0 }}x{{ else if .Y }}y{{ else }}z{{ end }}").unwrap();
        assert_eq!(t.len(), 4);
        assert!(matches!(&t[3], Node::If(b, e) if b.len() == 2 && e.len() == 1));
        let t = parse("{{ range $i, $v := query \"up\" }}{{ $v.Value | humanize }}{{ end }}").unwrap();
        match &t[0] {
            Node::Range(p, body, _) => {
                assert_eq!(p.vars, vec!["i".to_string(), "v".to_string()]);
                assert_eq!(body.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trims_whitespace_and_skips_comments() {
        let t = parse("a  {{- 1 -}}  b{{/* note */}}").unwrap();
        assert_eq!(t[0], Node::Text("a".into()));
        assert_eq!(t[2], Node::Text("b".into()));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn reports_errors_with_lines() {
        assert_eq!(parse("x\n{{ if 1 }}").unwrap_err().line, 2);
        assert!(parse("{{ end }}").is_err());
        assert!(parse("{{ \"open }}").is_err());
        assert!(parse("{{ 1 ").is_err());
        assert!(parse("{{ break }}").is_err());
    }
}
