//! Limits on what a script may use: string, array and map sizes, call and expression depths,
//! operations (off by default) and the size of a network response. Each has an environment
//! variable; `0` means unlimited, except for the two depths, which guard the native stack and
//! must be at least 1.

use rhai::Engine;

use crate::error::{Error, Result};

/// The variable, its default, what it limits, and whether 0 (no limit) is allowed.
const VARS: &[(&str, u64, &str, bool)] = &[
    (
        "NCSH_MAX_OPERATIONS",
        0,
        "operations a script may run",
        true,
    ),
    ("NCSH_MAX_STRING_SIZE", 16 << 20, "bytes in a string", true),
    (
        "NCSH_MAX_ARRAY_SIZE",
        1_000_000,
        "elements in an array",
        true,
    ),
    ("NCSH_MAX_MAP_SIZE", 1_000_000, "entries in a map", true),
    (
        "NCSH_MAX_CALL_LEVELS",
        DEFAULT_CALL_LEVELS,
        "nested function calls",
        false,
    ),
    (
        "NCSH_MAX_EXPR_DEPTH",
        256,
        "nesting depth of an expression",
        false,
    ),
    (
        "NCSH_MAX_RESPONSE_SIZE",
        16 << 20,
        "bytes in a network response",
        true,
    ),
];

/// Rhai's own default (deeper script recursion can overflow the native stack of a debug build).
#[cfg(debug_assertions)]
const DEFAULT_CALL_LEVELS: u64 = 8;
#[cfg(not(debug_assertions))]
const DEFAULT_CALL_LEVELS: u64 = 64;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub operations: u64,
    pub string_size: usize,
    pub array_size: usize,
    pub map_size: usize,
    pub call_levels: usize,
    pub expr_depth: usize,
    pub response_size: usize,
}

impl Limits {
    /// The limits from the environment; a value that is not a whole number is an error naming
    /// its variable.
    pub fn from_env() -> Result<Limits> {
        Self::from_lookup(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }

    /// The limits from the environment, the defaults for unusable values (already refused at
    /// start-up by [`Limits::from_env`]).
    pub fn current() -> Limits {
        Self::from_env().unwrap_or(DEFAULTS)
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Limits> {
        let mut values = [0u64; VARS.len()];
        for (slot, (var, default, what, zero)) in values.iter_mut().zip(VARS) {
            *slot = match lookup(var).filter(|v| !v.is_empty()) {
                None => *default,
                Some(v) => parse(var, &v, what, *zero)?,
            };
        }
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Limits {
            operations: values[0],
            string_size: size(values[1]),
            array_size: size(values[2]),
            map_size: size(values[3]),
            call_levels: size(values[4]),
            expr_depth: size(values[5]),
            response_size: size(values[6]),
        })
    }

    /// Apply the size and depth limits, and the operation limit when `operations` is set.
    pub fn apply(&self, engine: &mut Engine, operations: bool) {
        engine.set_max_string_size(self.string_size);
        engine.set_max_array_size(self.array_size);
        engine.set_max_map_size(self.map_size);
        engine.set_max_call_levels(self.call_levels);
        engine.set_max_expr_depths(self.expr_depth, self.expr_depth);
        if operations {
            engine.set_max_operations(self.operations);
        }
    }
}

const DEFAULTS: Limits = Limits {
    operations: 0,
    string_size: 16 << 20,
    array_size: 1_000_000,
    map_size: 1_000_000,
    call_levels: DEFAULT_CALL_LEVELS as usize,
    expr_depth: 256,
    response_size: 16 << 20,
};

fn parse(var: &str, value: &str, what: &str, zero: bool) -> Result<u64> {
    let shown: String = value.chars().take(40).collect();
    let more = if value.chars().count() > 40 {
        "…"
    } else {
        ""
    };
    let (least, no_limit) = if zero {
        (0, " (0 for no limit)")
    } else {
        (1, "")
    };
    match value.trim().parse::<u64>() {
        Ok(n) if n >= least => Ok(n),
        Ok(_) => Err(Error::Usage(format!(
            "{var}=‘{shown}’ is too small: set it to the most {what}, at least 1, or unset it"
        ))),
        Err(_) => Err(Error::Usage(format!(
            "{var}=‘{shown}{more}’ is not a whole number: set it to the most {what}{no_limit}, \
             or unset it"
        ))),
    }
}

/// The variable that sets the limit a Rhai error `message` is about, for the hint.
pub fn variable_for(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    Some(if m.contains("string") {
        "NCSH_MAX_STRING_SIZE"
    } else if m.contains("array") {
        "NCSH_MAX_ARRAY_SIZE"
    } else if m.contains("map") || m.contains("object") {
        "NCSH_MAX_MAP_SIZE"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Limits> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Limits::from_lookup(|var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_bound_sizes_but_not_operations() {
        let l = with(&[]).unwrap();
        assert_eq!(l, DEFAULTS);
        assert_eq!(l.operations, 0);
        assert!(l.string_size > 0 && l.array_size > 0 && l.map_size > 0);
        assert_eq!(with(&[("NCSH_MAX_OPERATIONS", "")]).unwrap(), DEFAULTS);
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let l = with(&[
            ("NCSH_MAX_OPERATIONS", "1000"),
            ("NCSH_MAX_STRING_SIZE", "0"),
        ])
        .unwrap();
        assert_eq!((l.operations, l.string_size), (1000, 0));
        for bad in ["-1", "1e19", "NaN", "inf", "x"] {
            let e = with(&[("NCSH_MAX_ARRAY_SIZE", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "NCSH_MAX_ARRAY_SIZE=‘{bad}’ is not a whole number"
                )),
                "{e}"
            );
        }
        let e = with(&[("NCSH_MAX_EXPR_DEPTH", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 1"), "{e}");
    }

    #[test]
    fn doubling_a_string_stops_at_the_limit() {
        let mut engine = Engine::new();
        DEFAULTS.apply(&mut engine, true);
        let started = std::time::Instant::now();
        let err = engine.run(r#"let s = "x"; loop { s += s; }"#).unwrap_err();
        assert!(
            matches!(*err, rhai::EvalAltResult::ErrorDataTooLarge(..)),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn max_operations_stops_an_endless_loop() {
        let mut engine = Engine::new();
        let limits = with(&[("NCSH_MAX_OPERATIONS", "100000")]).unwrap();
        limits.apply(&mut engine, true);
        let err = engine.run("loop {}").unwrap_err();
        assert!(
            matches!(*err, rhai::EvalAltResult::ErrorTooManyOperations(..)),
            "{err}"
        );
    }
}
