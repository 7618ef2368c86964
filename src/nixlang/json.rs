//! JSON as Nix writes and reads it (`builtins.toJSON`, `builtins.fromJSON`, `--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::error::EvalError;
use super::eval::{Evaluator, err_at};
use super::value::{Attrs, Value};

/// How deeply a value may nest when written.
const MAX_NESTING: usize = 10_000;

/// `builtins.fromJSON`.
pub(crate) fn from_json(text: &str) -> Result<Value, EvalError> {
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err_at(None, format!("cannot parse JSON: {e}")))?;
    Ok(from_serde(&parsed))
}

pub(crate) fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::string(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::list(items.iter().map(|i| from_serde(i).into()).collect())
        }
        serde_json::Value::Object(map) => {
            let attrs: Attrs = map
                .iter()
                .map(|(k, v)| (k.as_str().into(), from_serde(v).into()))
                .collect::<BTreeMap<_, _>>();
            Value::attrs(attrs)
        }
    }
}

/// A float as C++'s `ostream << double` writes it (`%g`, 6 significant digits), as Nix does.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = format!("{f:.5e}");
    let (mantissa, e) = exp.split_once('e').unwrap_or((&exp, "0"));
    let x: i32 = e.parse().unwrap_or(0);
    if (-4..6).contains(&x) {
        let decimals = (5 - x).max(0) as usize;
        let s = format!("{f:.decimals$}");
        trim_zeros(&s)
    } else {
        let m = trim_zeros(mantissa);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", x.abs())
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `v` (forcing what it contains) as Nix's `toJSON` does.
pub(crate) fn write_json(
    ev: &mut Evaluator,
    v: &Value,
    out: &mut String,
    depth: usize,
) -> Result<(), EvalError> {
    if depth > MAX_NESTING {
        return Err(err_at(None, "a value nested too deeply to convert to JSON"));
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&format_float(*f)),
        Value::String(s) => write_string(s, out),
        Value::Path(p) => write_string(&p.display().to_string(), out),
        Value::List(items) => {
            out.push('[');
            for (i, t) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = ev.force(t)?;
                stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
                    write_json(ev, &v, out, depth + 1)
                })?;
            }
            out.push(']');
        }
        Value::Attrs(a) => {
            if a.contains_key("__toString") {
                let s = ev.coerce_to_string(v.clone(), false, None)?;
                write_string(&s, out);
                return Ok(());
            }
            if let Some(p) = a.get("outPath").cloned() {
                let p = ev.force(&p)?;
                return write_json(ev, &p, out, depth + 1);
            }
            out.push('{');
            for (i, (k, t)) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                let v = ev.force(t)?;
                stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
                    write_json(ev, &v, out, depth + 1)
                })?;
            }
            out.push('}');
        }
        Value::Lambda(_) | Value::PrimOp(_) => {
            return Err(err_at(None, "cannot convert a function to JSON"));
        }
    }
    Ok(())
}

/// `v` as a JSON document (serde's value), forcing it deeply.
pub fn to_serde(ev: &mut Evaluator, v: &Value) -> Result<serde_json::Value, EvalError> {
    let mut out = String::new();
    write_json(ev, v, &mut out, 0)?;
    serde_json::from_str(&out).map_err(|e| err_at(None, format!("internal JSON error: {e}")))
}

/// A short rendering of a value for `trace` and messages.
pub(crate) fn show(ev: &mut Evaluator, v: &Value) -> Result<String, EvalError> {
    let mut out = String::new();
    write_json(ev, v, &mut out, 0)?;
    Ok(out)
}
