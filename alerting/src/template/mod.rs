//! Prometheus' template language for alert labels and annotations: Go's
//! `text/template` syntax with Prometheus' functions, so rule files written
//! for Prometheus render the same text here.
//!
//! ```text
//! {{ $labels.instance }} is down ({{ $value | humanizePercentage }})
//! ```

mod funcs;

use sightline_query::gotemplate::{CallError, Functions};
pub use sightline_query::gotemplate::{ParseError, Value, gofmt};

/// What a template may ask of its surroundings.
pub trait Env {
    /// Runs the PromQL instant query `q` at the evaluation time and returns
    /// its samples (see [`Value::sample`]).
    fn query(&mut self, q: &str) -> Result<Vec<Value>, String>;
    /// The server's external URL (`externalURL`).
    fn external_url(&self) -> String {
        String::new()
    }
    /// The path part of the external URL (`pathPrefix`).
    fn path_prefix(&self) -> String {
        String::new()
    }
}

/// An environment without a query engine: `query` fails.
pub struct NoQueries;

impl Env for NoQueries {
    fn query(&mut self, _q: &str) -> Result<Vec<Value>, String> {
        Err("queries are not available here".into())
    }
}

/// The variables Prometheus defines before every alert template.
pub const ALERT_PRELUDE: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// A parsed alert template: Go's syntax with Prometheus' functions.
#[derive(Debug, Clone)]
pub struct Template(sightline_query::gotemplate::Template);

/// Prometheus' template functions over an [`Env`].
struct PromFunctions<'a>(&'a mut dyn Env);

impl Functions for PromFunctions<'_> {
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, CallError> {
        funcs::call(name, args, self.0)
    }
}

impl Template {
    /// Parses `text`; `name` appears in error messages.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        sightline_query::gotemplate::Template::parse(name, text, &|n| funcs::NAMES.contains(&n)).map(Template)
    }

    /// Renders with `data` as `.` and `$`.
    pub fn render(&self, data: &Value, env: &mut dyn Env) -> Result<String, String> {
        self.0.render(data, &mut PromFunctions(env))
    }
}

/// The data of an alert template: `.Labels`, `.ExternalLabels`,
/// `.ExternalURL`, `.Value`.
pub fn alert_data<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    external_labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    external_url: &str,
    value: f64,
) -> Value {
    let mut m = std::collections::BTreeMap::new();
    m.insert("Labels".to_string(), Value::string_map(labels));
    m.insert("ExternalLabels".to_string(), Value::string_map(external_labels));
    m.insert("ExternalURL".to_string(), Value::Str(external_url.to_string()));
    m.insert("Value".to_string(), Value::Float(value));
    Value::Map(m)
}

/// Checks that an alert label or annotation template parses, as
/// `promtool check rules` does.
pub fn check_alert_template(alert_name: &str, text: &str) -> Result<(), String> {
    Template::parse(&format!("__alert_{alert_name}"), &format!("{ALERT_PRELUDE}{text}")).map(|_| ())
}

/// Expands an alert label or annotation as Prometheus does: the prelude
/// variables, then `text`; an error becomes the text
/// `<error expanding template: …>`.
pub fn expand_alert(alert_name: &str, text: &str, data: &Value, env: &mut dyn Env) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let name = format!("__alert_{alert_name}");
    let full = format!("{ALERT_PRELUDE}{text}");
    let result = Template::parse(&name, &full).and_then(|t| {
        t.render(data, env)
            .map_err(|e| format!("error executing template {name}: {e}"))
    });
    match result {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Env for Fake {
        fn query(&mut self, q: &str) -> Result<Vec<Value>, String> {
            match q {
                "up" => Ok(vec![
                    Value::sample([("__name__", "up"), ("instance", "b:9100")], 1.0),
                    Value::sample([("__name__", "up"), ("instance", "a:9100")], 0.0),
                ]),
                "none" => Ok(Vec::new()),
                _ => Err(format!("bad query {q}")),
            }
        }
        fn external_url(&self) -> String {
            "http://sightline:9780".into()
        }
    }

    fn alert(text: &str, value: f64) -> String {
        let data = alert_data(
            [("instance", "host:9100"), ("job", "node")],
            [("site", "fra")],
            "http://x",
            value,
        );
        expand_alert("Test", text, &data, &mut Fake)
    }

    #[test]
    fn prometheus_style_alert_templates() {
        assert_eq!(
            alert("{{ $labels.instance }} of {{ $labels.job }} down", 0.0),
            "host:9100 of node down"
        );
        assert_eq!(alert("value {{ $value }}", 1234567.0), "value 1.234567e+06");
        assert_eq!(alert("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(alert("{{ humanizePercentage $value }}", 0.256), "25.6%");
        assert_eq!(alert("{{ printf \"%.2f\" $value }}", 1.23456), "1.23");
        assert_eq!(alert("{{ $externalLabels.site }}/{{ $labels.missing }}.", 0.0), "fra/.");
        assert_eq!(alert("{{ if gt $value 80.0 }}high{{ else }}low{{ end }}", 90.0), "high");
        assert!(alert("{{ if gt $value 80 }}high{{ end }}", 90.0).starts_with("<error expanding template: "));
        assert_eq!(alert("no template", 1.0), "no template");
        assert_eq!(
            alert(
                "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }};{{ end }}",
                0.0
            ),
            "a:9100=0;b:9100=1;"
        );
        assert_eq!(
            alert("{{ with query \"up\" }}{{ . | first | value }}{{ end }}", 0.0),
            "1"
        );
        assert_eq!(
            alert("{{ with query \"none\" }}x{{ else }}empty{{ end }}", 0.0),
            "empty"
        );
        assert_eq!(
            alert("{{ query \"up\" | first | label \"instance\" | stripPort }}", 0.0),
            "b"
        );
        assert_eq!(
            alert("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", 0.0),
            "2"
        );
        assert_eq!(
            alert("{{ range $i, $v := args \"a\" \"b\" }}{{ $i }}{{ $v }} {{ end }}", 0.0),
            "arg0a arg1b "
        );
        assert_eq!(
            alert("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}", 0.0),
            "host"
        );
        assert_eq!(
            alert(
                "{{ if and (eq $labels.job \"node\") (match \"^host\" $labels.instance) }}y{{ end }}",
                0.0
            ),
            "y"
        );
        assert_eq!(
            alert("{{ len $labels }} {{ index $labels \"job\" }} {{ toUpper \"a\" }}", 0.0),
            "2 node A"
        );
    }

    #[test]
    fn errors_are_reported_in_the_text() {
        let out = alert("{{ query \"none\" | first }}", 0.0);
        assert!(out.contains("first() called on vector with no elements"), "{out}");
        let out = alert("{{ nosuchfunc 1 }}", 0.0);
        assert!(out.contains("function \"nosuchfunc\" not defined"), "{out}");
        assert_eq!(
            check_alert_template("A", "{{ if true }}{{ humanize (nosuch 1) }}{{ end }}"),
            Err("template: __alert_A:1: function \"nosuch\" not defined".into())
        );
        assert!(check_alert_template("A", "{{ $value | humanize }}").is_ok());
        let out = alert("{{ if }}", 0.0);
        assert!(
            out.starts_with("<error expanding template: template: __alert_Test:1:"),
            "{out}"
        );
    }
}
