//! Go's `fmt` formatting of numbers and `printf`, as templates print them:
//! `{{ $value }}` prints a float the way Go's `%v` does (`1e+06`, not
//! `1000000`), and `printf "%.2f"` follows Go's verbs and flags.

use super::value::Value;

/// Significant digits and decimal exponent of `f` (finite, non-zero):
/// `f = 0.d1d2d3… × 10^dp`. With `prec` = None the shortest digits that
/// round-trip; otherwise rounded to `prec` significant digits.
fn digits(f: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    (d, exp + 1)
}

fn special(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f == f64::INFINITY {
        Some("+Inf")
    } else if f == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// `%e` with `prec` digits after the point (Go: exponent with sign and at
/// least two digits).
pub fn fmt_e(f: f64, prec: usize) -> String {
    if let Some(s) = special(f) {
        return s.into();
    }
    let s = format!("{:.*e}", prec, f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// `%f` with `prec` digits after the point.
pub fn fmt_f(f: f64, prec: usize) -> String {
    if let Some(s) = special(f) {
        return s.into();
    }
    format!("{:.*}", prec, f)
}

/// `%g`: shortest (`prec` None, as `%v` prints floats) or `prec`
/// significant digits, exponent form when the exponent is below -4 or at
/// least the precision (6 for shortest).
pub fn fmt_g(f: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(f) {
        return s.into();
    }
    let neg = f.is_sign_negative();
    if f == 0.0 {
        return if neg { "-0".into() } else { "0".into() };
    }
    let prec = prec.map(|p| p.max(1));
    let (d, dp) = digits(f, prec);
    let nd = d.len() as i32;
    let mut eprec = match prec {
        None => 6,
        Some(p) => p as i32,
    };
    if prec.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&d[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&d[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
        return out;
    }
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(&d);
    } else if dp >= nd {
        out.push_str(&d);
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        out.push_str(&d[..dp as usize]);
        out.push('.');
        out.push_str(&d[dp as usize..]);
    }
    out
}

/// A value printed as Go's `%v` prints it.
pub fn fmt_v(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => fmt_g(*f, None),
        Value::Str(s) => s.clone(),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(fmt_v).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Map(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", fmt_v(v))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `fmt.Sprint`: operands printed with `%v`, a space between two
/// operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&fmt_v(a));
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, newline at the end.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(fmt_v).collect();
    format!("{}\n", parts.join(" "))
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else {
        return s;
    };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        return format!("{s}{}", " ".repeat(fill));
    }
    if spec.zero && numeric {
        let (sign, rest) = match s.strip_prefix(['-', '+', ' ']) {
            Some(rest) => (&s[..1], rest),
            None => ("", s.as_str()),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    format!("{}{s}", " ".repeat(fill))
}

fn signed(s: String, neg: bool, spec: &Spec) -> String {
    if neg || s.starts_with('-') {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    let bad = || format!("%!{verb}({})", type_and_value(arg));
    match verb {
        'v' => match arg {
            Value::Float(f) => pad(signed(fmt_g(*f, spec.prec), *f < 0.0, spec), spec, true),
            Value::Int(i) => pad(signed(i.to_string(), *i < 0, spec), spec, true),
            _ => pad(fmt_v(arg), spec, false),
        },
        's' => match arg {
            Value::Str(s) => pad(
                match spec.prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                },
                spec,
                false,
            ),
            Value::Float(_) | Value::Int(_) => bad(),
            _ => pad(fmt_v(arg), spec, false),
        },
        'q' => match arg {
            Value::Str(s) => pad(format!("{s:?}"), spec, false),
            _ => bad(),
        },
        't' => match arg {
            Value::Bool(b) => pad(b.to_string(), spec, false),
            _ => bad(),
        },
        'd' => match arg {
            Value::Int(i) => pad(signed(i.to_string(), *i < 0, spec), spec, true),
            _ => bad(),
        },
        'x' | 'X' => {
            let s = match arg {
                Value::Int(i) if *i < 0 => format!("-{:x}", i.unsigned_abs()),
                Value::Int(i) => format!("{i:x}"),
                Value::Str(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                _ => return bad(),
            };
            let s = if spec.sharp { format!("0x{s}") } else { s };
            pad(if verb == 'X' { s.to_uppercase() } else { s }, spec, true)
        }
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let Some(f) = as_float(arg).filter(|_| matches!(arg, Value::Float(_))) else {
                return bad();
            };
            let s = match verb {
                'f' | 'F' => fmt_f(f, spec.prec.unwrap_or(6)),
                'e' => fmt_e(f, spec.prec.unwrap_or(6)),
                'E' => fmt_e(f, spec.prec.unwrap_or(6)).to_uppercase(),
                'g' => fmt_g(f, spec.prec),
                _ => fmt_g(f, spec.prec).to_uppercase(),
            };
            pad(signed(s, f < 0.0, spec), spec, true)
        }
        _ => format!("%!{verb}({})", type_and_value(arg)),
    }
}

fn type_and_value(v: &Value) -> String {
    let t = match v {
        Value::Nil => return "<nil>".into(),
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
    };
    format!("{t}={}", fmt_v(v))
}

/// Go's `fmt.Sprintf` for the verbs templates use (`%v %s %q %d %x %X %f
/// %e %g %t %%`, flags `-+ 0#`, width and precision). Wrong types and
/// missing or extra operands are printed Go's way (`%!d(string=x)`,
/// `%!s(MISSING)`, `%!(EXTRA …)`).
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(a) => out.push_str(&format_one(verb, &spec, a)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        next += 1;
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..].iter().map(type_and_value).collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_v() {
        for (f, want) in [
            (0.5, "0.5"),
            (1.0, "1"),
            (999999.0, "999999"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(fmt_g(f, None), want, "{f}");
        }
    }

    #[test]
    fn precision_g_as_go() {
        assert_eq!(fmt_g(1234.5678, Some(4)), "1235");
        assert_eq!(fmt_g(123456.0, Some(4)), "1.235e+05");
        assert_eq!(fmt_g(100.0, Some(3)), "100");
        assert_eq!(fmt_g(0.012345, Some(4)), "0.01235");
        assert_eq!(fmt_g(12.0, Some(4)), "12");
        assert_eq!(fmt_g(0.0, Some(4)), "0");
    }

    #[test]
    fn printf_verbs() {
        let f = Value::Float(1.23456);
        assert_eq!(sprintf("%.2f", std::slice::from_ref(&f)), "1.23");
        assert_eq!(sprintf("%e", std::slice::from_ref(&f)), "1.234560e+00");
        assert_eq!(sprintf("%.3e", &[Value::Float(12345.678)]), "1.235e+04");
        assert_eq!(
            sprintf("%5.1f|%-6s|%03d", &[f, Value::Str("ab".into()), Value::Int(7)]),
            "  1.2|ab    |007"
        );
        assert_eq!(sprintf("%d", &[Value::Str("x".into())]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[Value::Str("a".into())]), "a %!s(MISSING)");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(sprintf("%q", &[Value::Str("a\"b".into())]), "\"a\\\"b\"");
        assert_eq!(
            sprintf("%v and %v", &[Value::Float(1e6), Value::Bool(true)]),
            "1e+06 and true"
        );
    }
}
