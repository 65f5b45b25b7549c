//! Go's `text/template` language: syntax (if/else if/range/with/
//! break/continue, variables, pipelines, trim markers), Go's truth and
//! number printing, and its built-in functions. The functions a template
//! may call beyond the built-ins come from the caller ([`Functions`]):
//! Prometheus' for alert templates (in the alerting crate), Loki's for
//! LogQL's `line_format` and `label_format`.

pub mod builtins;
mod exec;
pub mod gofmt;
mod parse;
mod value;

pub use parse::ParseError;
pub use value::Value;

/// Why a function call failed.
#[derive(Debug)]
pub enum CallError {
    /// No function of that name.
    Unknown,
    /// The function returned an error.
    Failed(String),
}

/// The functions a template may call besides Go's built-ins.
pub trait Functions {
    /// Calls `name`; [`CallError::Unknown`] when there is no such function.
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, CallError>;
}

/// No functions beyond the built-ins.
pub struct BuiltinsOnly;

impl Functions for BuiltinsOnly {
    fn call(&mut self, _name: &str, _args: Vec<Value>) -> Result<Value, CallError> {
        Err(CallError::Unknown)
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses `text`; `name` appears in error messages; `known` says which
    /// function names exist besides the built-ins (an unknown one is a
    /// parse error, as in Go).
    pub fn parse(name: &str, text: &str, known: &dyn Fn(&str) -> bool) -> Result<Template, String> {
        let nodes = parse::parse(text).map_err(|e| format!("template: {name}:{}: {}", e.line, e.message))?;
        if let Some((line, f)) = parse::unknown_function(&nodes, &|n| builtins::NAMES.contains(&n) || known(n)) {
            return Err(format!("template: {name}:{line}: function {f:?} not defined"));
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
        })
    }

    /// Renders with `data` as `.` and `$`.
    pub fn render(&self, data: &Value, funcs: &mut dyn Functions) -> Result<String, String> {
        let mut ex = exec::Exec {
            funcs,
            name: self.name.clone(),
            root: data.clone(),
            vars: Vec::new(),
            out: String::new(),
        };
        ex.run(&self.nodes, data)?;
        Ok(ex.out)
    }
}
