//! The values a template works with: Go's basic kinds, lists and maps.

use std::collections::BTreeMap;

/// A template value. Query results are lists of maps with `Labels` (a map
/// of strings) and `Value` (a float), as in Prometheus' templates.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer constant or length.
    Int(i64),
    /// A float (`$value`, sample values).
    Float(f64),
    /// A string.
    Str(String),
    /// A list (query results, `args`).
    List(Vec<Value>),
    /// A map with string keys (`$labels`, a sample).
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Go's truth: false, 0, nil and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// A map of strings (`$labels`).
    pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
        )
    }

    /// One query result sample: `{Labels: …, Value: …}`.
    pub fn sample<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>, value: f64) -> Value {
        let mut m = BTreeMap::new();
        m.insert("Labels".to_string(), Value::string_map(labels));
        m.insert("Value".to_string(), Value::Float(value));
        Value::Map(m)
    }

    /// Go's name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
