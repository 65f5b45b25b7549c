//! Executing a parsed template against data, with Go's scoping of
//! variables, truth, `range` over lists and maps, and `and`/`or`
//! evaluating only as far as needed.

use super::gofmt::fmt_v;
use super::parse::{Node, Operand, Pipeline};
use super::value::Value;
use super::{CallError, Functions, builtins};

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'e> {
    pub funcs: &'e mut dyn Functions,
    pub name: String,
    pub root: Value,
    pub vars: Vec<(String, Value)>,
    pub out: String,
}

impl Exec<'_> {
    fn fail<T>(&self, line: usize, at: &str, msg: impl std::fmt::Display) -> Result<T, String> {
        Err(format!(
            "template: {name}:{line}: executing \"{name}\" at <{at}>: {msg}",
            name = self.name
        ))
    }

    fn call(&mut self, line: usize, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let result = if builtins::NAMES.contains(&name) {
            builtins::call(name, args)
        } else {
            self.funcs.call(name, args)
        };
        match result {
            Ok(v) => Ok(v),
            Err(CallError::Unknown) => self.fail(line, name, format!("function \"{name}\" not defined")),
            Err(CallError::Failed(msg)) => self.fail(line, name, format!("error calling {name}: {msg}")),
        }
    }

    pub fn run(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        self.list(nodes, dot).map(|_| ())
    }

    fn list(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        for n in nodes {
            match self.node(n, dot)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn scoped(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        let mark = self.vars.len();
        let r = self.list(nodes, dot);
        self.vars.truncate(mark);
        r
    }

    fn node(&mut self, n: &Node, dot: &Value) -> Result<Flow, String> {
        match n {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.pipeline(p, dot)?;
                if p.vars.is_empty() {
                    self.out.push_str(&fmt_v(&v));
                }
            }
            Node::If(branches, otherwise) => {
                let mark = self.vars.len();
                for (cond, body) in branches {
                    if self.pipeline(cond, dot)?.truthy() {
                        let r = self.scoped(body, dot);
                        self.vars.truncate(mark);
                        return r;
                    }
                }
                let r = self.scoped(otherwise, dot);
                self.vars.truncate(mark);
                return r;
            }
            Node::With(p, body, otherwise) => {
                let mark = self.vars.len();
                let v = self.pipeline(p, dot)?;
                let r = if v.truthy() {
                    self.scoped(body, &v)
                } else {
                    self.scoped(otherwise, dot)
                };
                self.vars.truncate(mark);
                return r;
            }
            Node::Range(p, body, otherwise) => {
                let mark = self.vars.len();
                let bare = Pipeline {
                    vars: Vec::new(),
                    ..p.clone()
                };
                let v = self.pipeline(&bare, dot)?;
                let items: Vec<(Value, Value)> = match v {
                    Value::List(l) => l
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Int(i as i64), v))
                        .collect(),
                    Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                    Value::Int(n) => (0..n.max(0)).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                    Value::Nil => Vec::new(),
                    other => return self.fail(p.line, "range", format!("range can't iterate over {}", fmt_v(&other))),
                };
                if items.is_empty() {
                    let r = self.scoped(otherwise, dot);
                    self.vars.truncate(mark);
                    return r;
                }
                for (k, v) in items {
                    let inner = self.vars.len();
                    match p.vars.as_slice() {
                        [] => {}
                        [one] => self.vars.push((one.clone(), v.clone())),
                        [a, b, ..] => {
                            self.vars.push((a.clone(), k));
                            self.vars.push((b.clone(), v.clone()));
                        }
                    }
                    let flow = self.list(body, &v);
                    self.vars.truncate(inner);
                    match flow? {
                        Flow::Break => break,
                        Flow::Normal | Flow::Continue => {}
                    }
                }
                self.vars.truncate(mark);
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(p.line, cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        if p.assign {
            for name in &p.vars {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return self.fail(p.line, &format!("${name}"), format!("undefined variable: ${name}")),
                }
            }
        } else if let Some(name) = p.vars.first() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn command(&mut self, line: usize, cmd: &[Operand], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        if let Some(Operand::Func(name)) = cmd.first() {
            if name == "and" || name == "or" {
                return self.and_or(line, name, &cmd[1..], dot, piped);
            }
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.operand(line, a, dot)?);
            }
            args.extend(piped);
            return self.call(line, name, args);
        }
        if cmd.len() > 1 || piped.is_some() {
            return self.fail(line, "", "can't give argument to non-function");
        }
        match cmd.first() {
            Some(op) => self.operand(line, op, dot),
            None => Ok(Value::Nil),
        }
    }

    fn and_or(
        &mut self,
        line: usize,
        name: &str,
        args: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, String> {
        let want = name == "or";
        let total = args.len() + usize::from(piped.is_some());
        if total == 0 {
            return self.fail(
                line,
                name,
                format!("wrong number of args for {name}: want at least 1 got 0"),
            );
        }
        let mut last = Value::Nil;
        for a in args {
            last = self.operand(line, a, dot)?;
            if last.truthy() == want {
                return Ok(last);
            }
        }
        if let Some(p) = piped {
            last = p;
        }
        Ok(last)
    }

    fn operand(&mut self, line: usize, op: &Operand, dot: &Value) -> Result<Value, String> {
        let (base, fields) = match op {
            Operand::Const(v) => return Ok(v.clone()),
            Operand::Func(name) => {
                return self.call(line, name, Vec::new());
            }
            Operand::Dot(fields) => (dot.clone(), fields),
            Operand::Var(name, fields) => {
                let v = if name.is_empty() {
                    self.root.clone()
                } else {
                    match self.vars.iter().rev().find(|(n, _)| n == name) {
                        Some((_, v)) => v.clone(),
                        None => return self.fail(line, &format!("${name}"), format!("undefined variable: ${name}")),
                    }
                };
                (v, fields)
            }
            Operand::Sub(p, fields) => {
                let mark = self.vars.len();
                let v = self.pipeline(p, dot);
                self.vars.truncate(mark);
                (v?, fields)
            }
        };
        let mut v = base;
        for f in fields {
            v = match v {
                Value::Map(mut m) => {
                    let all_strings = m.values().all(|x| matches!(x, Value::Str(_)));
                    match m.remove(f) {
                        Some(x) => x,
                        // A label map gives "" for a missing label
                        // (Prometheus' missingkey=zero).
                        None if all_strings => Value::Str(String::new()),
                        None => return self.fail(line, &format!(".{f}"), format!("can't evaluate field {f}")),
                    }
                }
                Value::Nil => return self.fail(line, &format!(".{f}"), format!("nil pointer evaluating .{f}")),
                other => {
                    return self.fail(
                        line,
                        &format!(".{f}"),
                        format!("can't evaluate field {f} in type {}", other.kind()),
                    );
                }
            };
        }
        Ok(v)
    }
}
