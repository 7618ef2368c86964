//! `ncsh login NAME` with all of its input piped at once (a here-document, `printf … |`): each
//! line reaches login only once it asks for it, so no answer is flushed away by PAM's prompt.

use crate::common::*;
use crate::login::Session;

const PASSWORD: &str = "through-the-glass";

/// A started container with a user `alice` whose password is [`PASSWORD`].
fn container_with_alice(env: &Env, tag: &str) -> String {
    let name = unique_name(tag);
    let config =
        format!("users.users.alice = {{ isNormalUser = true; password = \"{PASSWORD}\"; }};");
    env.create_booting_with(&name, &["--config", &config]);
    assert_ok(&env.run(&["start", &name]), "start");
    name
}

#[test]
fn login_with_all_input_piped_at_once() {
    require_root();
    let env = Env::new();
    let name = container_with_alice(&env, "lpa");

    // Everything in one write, before the first prompt, and the end of input right after.
    let mut s = Session::on_pipes(&env, &["login", &name]);
    s.send(&format!(
        "alice\n{PASSWORD}\necho \"I am $(id -un), $((6*7))\"\nexit 0\n"
    ));
    s.close_input();
    s.expect(&format!("{name} login: "));
    s.expect("Password: ");
    s.expect("I am alice, 42");
    assert_eq!(s.finish(), 0, "{}", s.text());
    assert!(!s.text().contains("Login incorrect"), "{}", s.text());

    // A refused try first: the answers after it go to the next prompts, in order.
    let mut s = Session::on_pipes(&env, &["login", &name]);
    s.send(&format!(
        "alice\nnot-the-password\nalice\n{PASSWORD}\necho \"second try: $(id -un)\"\n"
    ));
    s.close_input();
    s.expect("Login incorrect");
    s.expect(&format!("{name} login: "));
    s.expect("second try: alice");
    // The end of input logs the shell out.
    assert_eq!(s.finish(), 0, "{}", s.text());

    // Only wrong answers: three refusals, no session, so no success either.
    let mut s = Session::on_pipes(&env, &["login", &name]);
    s.send("alice\nwrong1\nalice\nwrong2\nalice\nwrong3\n");
    s.close_input();
    s.expect("Maximum number of tries exceeded (3)");
    assert_eq!(s.finish(), 1, "{}", s.text());
}
