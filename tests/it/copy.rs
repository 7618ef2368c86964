//! `ncsh copy-to` and `copy-from` (as machinectl's): files, directories and links, modes and
//! owners kept, a link copied as the link it is; a container's links never reach the host.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use crate::common::*;

/// Owner and permission bits of `path` itself (a link's own).
fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777)
}

/// A tree: `d/` 0750, `d/f` 0640, `d/suid` 04755, all owned by 1234:2345; `d/link` → /etc/shadow.
fn make_tree(d: &Path) {
    std::fs::create_dir(d).unwrap();
    std::fs::write(d.join("f"), "hello\n").unwrap();
    std::fs::write(d.join("suid"), "#!/bin/sh\n").unwrap();
    symlink("/etc/shadow", d.join("link")).unwrap();
    for p in ["f", "suid", "link", ""] {
        std::os::unix::fs::lchown(d.join(p), Some(1234), Some(2345)).unwrap();
    }
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(d.join("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(d.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
}

/// The tree `make_tree` makes, found at `d`.
fn assert_tree(d: &Path) {
    assert_eq!(owner_mode(d), (1234, 2345, 0o750));
    assert_eq!(owner_mode(&d.join("f")), (1234, 2345, 0o640));
    assert_eq!(std::fs::read_to_string(d.join("f")).unwrap(), "hello\n");
    assert_eq!(owner_mode(&d.join("suid")), (1234, 2345, 0o4755));
    assert_eq!(owner_mode(&d.join("link")).0, 1234);
    assert_eq!(
        std::fs::read_link(d.join("link")).unwrap(),
        Path::new("/etc/shadow"),
        "the link is copied as a link"
    );
}

#[test]
fn files_directories_and_links_are_copied_with_owners_and_modes_never_through_a_link() {
    require_root();
    let env = Env::new();
    let name = unique_name("cp");
    env.create(&name, &[]);
    let root = env.root_path(&name);
    let host = tempfile::tempdir().unwrap();
    let tree = host.path().join("tree");
    make_tree(&tree);

    // Into the container (stopped: its root directory).
    let out = env.run(&["copy-to", &name, tree.to_str().unwrap(), "/srv/tree"]);
    assert_ok(&out, "copy-to");
    assert_tree(&root.join("srv/tree"));

    // Out of it, and a link of the container's to the host's shadow is copied as that link.
    symlink("/etc/shadow", root.join("root/shadow-link")).unwrap();
    let back = host.path().join("back");
    let out = env.run(&["copy-from", &name, "/srv/tree", back.to_str().unwrap()]);
    assert_ok(&out, "copy-from");
    assert_tree(&back);
    let link = host.path().join("shadow-link");
    let out = env.run(&[
        "copy-from",
        &name,
        "/root/shadow-link",
        link.to_str().unwrap(),
    ]);
    assert_ok(&out, "copy-from of a link");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the container's link was followed"
    );

    // A link of the container's on the way in resolves inside it: `/evil` → `/`'s `../../..`.
    let canary = host.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let escape = format!("../../../../../../../..{}", canary.display());
    symlink(&escape, root.join("evil")).unwrap();
    let out = env.run(&[
        "copy-to",
        &name,
        tree.join("f").to_str().unwrap(),
        "/evil/f",
    ]);
    // Inside the container the link leads nowhere: refused, saying so.
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("evil is a link to a path that does not exist in the container"),
        "{}",
        stderr(&out)
    );
    assert!(
        !canary.join("f").exists(),
        "copy-to wrote through the link out of the root"
    );

    // One leading to an existing directory lands inside: `/up` → `../../../../etc` is the
    // container's /etc.
    symlink("../../../../../../../../etc", root.join("up")).unwrap();
    let file = format!("ncsh-copy-{name}");
    let inside = format!("/up/{file}");
    let out = env.run(&["copy-to", &name, tree.join("f").to_str().unwrap(), &inside]);
    assert_ok(&out, "copy-to through the container's link to its /etc");
    assert!(root.join("etc").join(&file).exists());
    assert!(
        !Path::new("/etc").join(&file).exists(),
        "copy-to wrote the host's /etc"
    );

    // Bad input: a clear error, nothing made.
    let out = env.run(&[
        "copy-from",
        &name,
        "/no/such",
        host.path().join("x").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/no/such: no such file in container"),
        "{}",
        stderr(&out)
    );
    assert!(!host.path().join("x").exists());
    let out = env.run(&["copy-to", &name, "/no/such/host/file", "/x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/no/such/host/file"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["copy-to", &name]);
    assert!(stderr(&out).contains("usage: ncsh copy-to NAME HOST_PATH [CONTAINER_PATH]"));

    assert_ok(&env.run(&["destroy", &name]), "destroy");
}

#[test]
fn a_running_container_is_copied_to_as_it_sees_itself() {
    require_root();
    let env = Env::new();
    let name = unique_name("cpr");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    let host = tempfile::tempdir().unwrap();
    let f = host.path().join("f");
    std::fs::write(&f, "from the host\n").unwrap();
    // /tmp of a running container is its own tmpfs, not the root directory's.
    let out = env.run(&["copy-to", &name, f.to_str().unwrap(), "/tmp/f"]);
    assert_ok(&out, "copy-to a running container");
    let cat = env.run_inside(&name, &["cat", "/tmp/f"]);
    assert_eq!(stdout(&cat), "from the host\n");
    let back = host.path().join("back");
    let out = env.run(&["copy-from", &name, "/tmp/f", back.to_str().unwrap()]);
    assert_ok(&out, "copy-from a running container");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the host\n");
    assert_ok(&env.run(&["destroy", &name]), "destroy");
}
