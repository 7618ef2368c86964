use super::*;

fn cfg(text: &str) -> Result<OptionTree, EvalError> {
    eval_str(text, Path::new("<config>"), Path::new("/base"))
}

#[test]
fn smoke() {
    let t = cfg("services.openssh.enable = true;").unwrap();
    assert_eq!(t.get("services.openssh.enable"), Some(&Value::Bool(true)));
}
