//! `/proc/self/mountinfo`: the mount points, with the kernel's octal escapes decoded.
//!
//! The kernel writes space, tab, newline and backslash in a path as `\040`, `\011`, `\012` and
//! `\134` (`show_mountinfo`, `mangle`); other bytes, including non-UTF-8 ones, appear as they are.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Decode the `\ooo` octal escapes of one mountinfo field; a backslash not followed by three
/// octal digits stays as it is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .and_then(|n| u8::try_from(n).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// The mount points (field 5) of mountinfo `text`.
pub fn mount_points_in(text: &[u8]) -> Vec<PathBuf> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(|field| PathBuf::from(OsString::from_vec(unescape(field))))
        .collect()
}

/// The mount points of this process's mount namespace (none if mountinfo cannot be read).
pub fn mount_points() -> Vec<PathBuf> {
    std::fs::read("/proc/self/mountinfo")
        .map(|text| mount_points_in(&text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_four_escapes_the_kernel_writes() {
        assert_eq!(unescape(br"a\040b\011c\012d\134e"), b"a b\tc\nd\\e");
        assert_eq!(unescape(br"\134040"), b"\\040");
        assert_eq!(unescape(b"plain"), b"plain");
    }

    #[test]
    fn leaves_what_is_not_an_escape() {
        assert_eq!(unescape(br"a\b"), br"a\b");
        assert_eq!(unescape(br"a\04"), br"a\04");
        assert_eq!(unescape(br"a\089"), br"a\089");
        assert_eq!(unescape(br"\777"), br"\777");
        assert_eq!(unescape(b"\\"), b"\\");
        assert_eq!(unescape(b"\xff\\101"), b"\xffA");
    }

    #[test]
    fn reads_field_five_of_each_line() {
        let text = b"36 35 98:0 /mnt1 /mnt/a\\011b\\012c\\134d\\040e rw,noatime master:1 - ext3 /dev/root rw\n\
                     37 35 0:5 / /\xff rw - tmpfs none rw\n";
        assert_eq!(
            mount_points_in(text),
            vec![
                PathBuf::from("/mnt/a\tb\nc\\d e"),
                PathBuf::from(OsString::from_vec(b"/\xff".to_vec())),
            ]
        );
    }

    #[test]
    fn this_process_has_a_root_mount() {
        assert!(
            mount_points()
                .iter()
                .any(|p| p == std::path::Path::new("/"))
        );
    }
}
