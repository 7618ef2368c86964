//! The one place where crate errors become Rhai errors, and Rhai errors become what the user
//! reads. A domain error is thrown as a map `#{kind, message, hint}` so scripts can
//! `catch (e) { e.kind }`; `exit(code)` travels as a termination carrying the code.

use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};

use crate::error::Error;

pub fn to_rhai(e: Error) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), e.kind().into());
    map.insert("message".into(), e.to_string().into());
    map.insert("hint".into(), e.hint().map_or(Dynamic::UNIT, Dynamic::from));
    if let Some(status) = e.exit_status() {
        map.insert("status".into(), i64::from(status).into());
    }
    EvalAltResult::ErrorRuntime(map.into(), Position::NONE).into()
}

/// The error `exit(code)` raises to end a script with that code.
pub fn exit_request(code: i64) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("exit".into(), code.into());
    EvalAltResult::ErrorTerminated(map.into(), Position::NONE).into()
}

/// What an error that ended a script means for the user.
pub struct Failure {
    /// `exit(code)` was called: no message.
    pub exit: Option<i32>,
    pub message: String,
    pub hint: Option<String>,
    pub position: Position,
    /// Raised by ncsh (a domain error), not by the script's own code.
    pub from_ncsh: bool,
    /// The exit status the error ends a command line with (1 unless it says otherwise, as a
    /// command that could not be run does: 127 or 126).
    pub status: i32,
    /// When the error happened inside a function of the script itself: the function, and the
    /// position in it (in the source that defined it). `position` is then the outermost call.
    pub inside: Option<(String, Position)>,
}

impl Failure {
    /// Where to point and what to say there: inside the function when the error happened in
    /// one, naming it and the line that called it (`Variable not found: x (in fn f, called at
    /// line 5)`), else at `position`.
    pub fn located(&self) -> (Position, String) {
        match &self.inside {
            Some((function, at)) => {
                let called = self
                    .position
                    .line()
                    .map(|l| format!(", called at line {l}"))
                    .unwrap_or_default();
                (
                    *at,
                    format!("{} (in {}{called})", self.message, fn_words(function)),
                )
            }
            None => (self.position, self.message.clone()),
        }
    }
}

/// `fn f` or `a closure`.
pub fn fn_words(function: &str) -> String {
    if function.starts_with("anon$") {
        "a closure".to_string()
    } else {
        format!("fn {function}")
    }
}

/// Unwrap function-call layers down to the error that caused them, keeping the first position
/// found from the outside in (the line of the script being run).
pub fn describe(err: &EvalAltResult) -> Failure {
    let mut position = err.position();
    let mut inner = err;
    // The innermost function of the same source that the error passed through.
    let mut frame: Option<String> = None;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        frame = match inner {
            EvalAltResult::ErrorInFunctionCall(function, source, ..) if source.is_empty() => {
                Some(function.clone())
            }
            _ => None,
        };
        inner = e;
        if position.is_none() {
            position = inner.position();
        }
    }
    let inside = frame
        .filter(|_| !inner.position().is_none() && !position.is_none())
        .map(|function| (function, inner.position()));
    let mut failure = Failure {
        exit: None,
        message: String::new(),
        hint: None,
        position,
        from_ncsh: false,
        inside,
        status: 1,
    };
    match inner {
        EvalAltResult::ErrorTerminated(value, _) => {
            let code = value
                .clone()
                .try_cast::<Map>()
                .and_then(|m| m.get("exit")?.as_int().ok());
            failure.exit = Some(code.map_or(1, |c| c.clamp(0, 255) as i32));
        }
        EvalAltResult::ErrorRuntime(value, _) => match value.clone().try_cast::<Map>() {
            Some(map) if map.contains_key("kind") && map.contains_key("message") => {
                failure.message = map
                    .get("message")
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                failure.hint = map
                    .get("hint")
                    .filter(|h| !h.is_unit())
                    .map(|h| h.to_string());
                failure.from_ncsh = true;
                failure.status = map
                    .get("status")
                    .and_then(|s| s.as_int().ok())
                    .and_then(|s| i32::try_from(s).ok())
                    .filter(|s| (1..=255).contains(s))
                    .unwrap_or(1);
            }
            _ => failure.message = value.to_string(),
        },
        other => {
            failure.message = other
                .to_string()
                .split(" (line ")
                .next()
                .unwrap_or_default()
                .to_string();
            failure.hint = limit_hint(other);
        }
    }
    failure
}

/// What to set when a script hit one of its limits (see `engine::limits`).
fn limit_hint(err: &EvalAltResult) -> Option<String> {
    let (var, zero) = match err {
        EvalAltResult::ErrorDataTooLarge(what, _) => (super::limits::variable_for(what)?, true),
        EvalAltResult::ErrorTooManyOperations(_) => ("NCSH_MAX_OPERATIONS", true),
        EvalAltResult::ErrorStackOverflow(_) => ("NCSH_MAX_CALL_LEVELS", false),
        _ => return None,
    };
    let no_limit = if zero { " (0 for no limit)" } else { "" };
    Some(format!(
        "a script limit: raise {var}{no_limit} if this is expected"
    ))
}

/// [`describe`], and for the mistakes a newcomer makes, what was meant: a function called with
/// arguments of the wrong types gets its signatures (an argv array where a command line was
/// given says so), an unknown property the properties there are, and Rust's type names read
/// as Rhai's.
pub fn explain(err: &EvalAltResult, engine: &Engine) -> Failure {
    let mut failure = describe(err);
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
    }
    match inner {
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            let (name, args) = called(signature);
            failure.message = format!("Function not found: {name}({})", args.join(", "));
            let docs: Vec<String> = super::docs::docs(engine)
                .into_iter()
                .filter(|d| d.name == name && !d.property)
                .map(|d| d.signature)
                .collect();
            if !docs.is_empty() {
                let argv = args.iter().any(|a| a == "string")
                    && docs.iter().any(|d| d.contains("argv: array"));
                let lead = if argv {
                    format!(
                        "`{name}` takes an argv array, one string per argument (`[\"uname\", \"-a\"]`), not a command line; "
                    )
                } else {
                    String::new()
                };
                failure.hint = Some(format!("{lead}it is called as {}", docs.join(" or ")));
            }
        }
        EvalAltResult::ErrorDotExpr(text, _) if text.starts_with("Unknown property '") => {
            let mut quoted = text.split('\'').skip(1).step_by(2);
            let (property, ty) = (
                quoted.next().unwrap_or_default(),
                quoted.next().unwrap_or_default(),
            );
            failure.message = format!("{} has no property ‘{property}’", rhai_type(ty));
            let names = properties(engine, ty);
            if !names.is_empty() {
                failure.hint = Some(format!("its properties: {}", names.join(" ")));
            }
        }
        _ => {}
    }
    failure
}

/// The name and argument types of a call Rhai did not find (`run (Container, &str |
/// ImmutableString | String)`), the types in Rhai's words.
fn called(signature: &str) -> (String, Vec<String>) {
    let (name, rest) = signature.split_once(" (").unwrap_or((signature, ")"));
    let args = rest
        .strip_suffix(')')
        .unwrap_or(rest)
        .split(", ")
        .filter(|a| !a.is_empty())
        .map(rhai_type)
        .collect();
    (name.to_string(), args)
}

/// A type as Rhai's messages name it, as scripts know it.
fn rhai_type(rust: &str) -> String {
    match rust.trim() {
        "&str | ImmutableString | String" | "ImmutableString" | "String" | "&str" => "string",
        "i64" => "int",
        "f64" => "float",
        "rhai::Array" | "Array" => "array",
        "rhai::Map" | "Map" => "map",
        other => return other.rsplit("::").next().unwrap_or(other).to_string(),
    }
    .to_string()
}

/// The properties a value of type `ty` has: the API's documented ones for its own types, else
/// the getters registered for it.
fn properties(engine: &Engine, ty: &str) -> Vec<String> {
    let member: Option<fn(&super::docs::Doc) -> bool> = match ty {
        "Container" => Some(super::docs::Doc::is_container_member),
        "Test" => Some(super::docs::Doc::is_test_member),
        _ => None,
    };
    if let Some(member) = member {
        return super::docs::docs(engine)
            .into_iter()
            .filter(|d| d.property && member(d))
            .map(|d| d.name)
            .collect();
    }
    let mut names: Vec<String> = engine
        .gen_fn_signatures(true)
        .iter()
        .filter_map(|s| {
            let (name, params) = s.strip_prefix("get$")?.split_once('(')?;
            let receiver = params.split([',', ')']).next()?.split_once(':')?.1;
            (receiver.trim().trim_start_matches("&mut ") == ty).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_read_in_rhai_words() {
        assert_eq!(
            called("run (Container, &str | ImmutableString | String)"),
            (
                "run".to_string(),
                vec!["Container".to_string(), "string".to_string()]
            )
        );
        assert_eq!(called("f ()"), ("f".to_string(), vec![]));
        assert_eq!(called("g (i64, f64, array)").1, ["int", "float", "array"]);
    }

    #[test]
    fn an_error_inside_a_function_points_into_it() {
        let engine = Engine::new();
        let source = "fn f(x) {\n  x + nosuch\n}\nlet y = 1;\nf(y)";
        let err = engine.run(source).expect_err("fails");
        let (at, message) = describe(&err).located();
        assert_eq!((at.line(), at.position()), (Some(2), Some(7)));
        assert_eq!(
            message,
            "Variable not found: nosuch (in fn f, called at line 5)"
        );
        // At the top level, nothing changes.
        let err = engine.run("let y = 1;\nnosuch").expect_err("fails");
        let (at, message) = describe(&err).located();
        assert_eq!(
            (at.line(), message.as_str()),
            (Some(2), "Variable not found: nosuch")
        );
    }

    #[test]
    fn unknown_properties_list_the_type_s() {
        let engine = Engine::new();
        let err = engine.run("let r = 1..3; r.nosuch").expect_err("fails");
        let failure = explain(&err, &engine);
        assert_eq!(failure.message, "range has no property ‘nosuch’");
        let hint = failure.hint.unwrap_or_default();
        assert!(
            hint.starts_with("its properties: ") && hint.contains("start"),
            "{hint}"
        );
    }
}
