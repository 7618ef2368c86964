//! The `--config-file` a create or update builds from: it must be a regular file.

use std::path::Path;

use crate::error::{Error, Result};

/// Refuse a `--config-file` that does not exist or is not a regular file, saying what it is.
pub fn check(file: &Path) -> Result<()> {
    let why = match std::fs::metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file".to_string(),
        Err(e) => e.to_string(),
        Ok(m) if m.is_file() => return Ok(()),
        Ok(m) if m.is_dir() => format!(
            "is a directory: pass the module file in it, such as {}",
            file.join("configuration.nix").display()
        ),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            let what = if t.is_fifo() {
                "a FIFO"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "of an unknown kind"
            };
            format!("not a regular file ({what}): pass a .nix file")
        }
    };
    Err(Error::Usage(format!(
        "--config-file {}: {why}",
        file.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(path: &Path) -> String {
        check(path).unwrap_err().to_string()
    }

    #[test]
    fn says_what_the_path_is() {
        let dir = tempfile::tempdir().unwrap();
        assert!(message(dir.path()).ends_with(&format!(
            ": is a directory: pass the module file in it, such as {}/configuration.nix",
            dir.path().display()
        )));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(message(&fifo).ends_with(": not a regular file (a FIFO): pass a .nix file"));
        assert_eq!(
            message(Path::new("/dev/zero")),
            "--config-file /dev/zero: not a regular file (a character device): pass a .nix file"
        );
        assert!(message(&dir.path().join("nope")).ends_with(": no such file"));
        let file = dir.path().join("c.nix");
        std::fs::write(&file, "{ }").unwrap();
        assert!(check(&file).is_ok());
    }
}
