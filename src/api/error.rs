//! The one place where crate errors become Rhai errors, and Rhai errors become what the user
//! reads. A domain error is thrown as a map `#{kind, message, hint}` so scripts can
//! `catch (e) { e.kind }`; `exit(code)` travels as a termination carrying the code.

use rhai::{Dynamic, EvalAltResult, Map, Position};

use crate::error::Error;

pub fn to_rhai(e: Error) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), e.kind().into());
    map.insert("message".into(), e.to_string().into());
    map.insert("hint".into(), e.hint().map_or(Dynamic::UNIT, Dynamic::from));
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
}

/// Unwrap function-call layers down to the error that caused them, keeping the first position
/// found from the outside in (the line of the script being run).
pub fn describe(err: &EvalAltResult) -> Failure {
    let mut position = err.position();
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
        if position.is_none() {
            position = inner.position();
        }
    }
    let mut failure = Failure {
        exit: None,
        message: String::new(),
        hint: None,
        position,
        from_ncsh: false,
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
