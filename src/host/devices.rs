//! A container's device policy without systemd (ARCHITECTURE.md, "Limits"): NixOS's
//! `DevicePolicy=closed` and its `DeviceAllow=` as rules, applied the way systemd applies them.
//! On cgroup2, device access is decided by `BPF_PROG_TYPE_CGROUP_DEVICE` programs attached to a
//! cgroup and its ancestors: ncsh loads one that allows the rules and nothing else, attached
//! with `BPF_F_ALLOW_MULTI` (the container's own systemd attaches its units' programs below
//! it, and every program on the path must allow an access). Without cgroup2 (a legacy host), the
//! v1 `devices` controller's `devices.deny`/`devices.allow` say the same.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::container::unit::{self, Device};
use crate::error::{Error, Result};

/// One rule: a block or char device, its major, its minor (None: any), the accesses allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub block: bool,
    pub major: u32,
    pub minor: Option<u32>,
    /// BPF_DEVCG_ACC_*: mknod 1, read 2, write 4.
    pub access: u32,
}

impl Rule {
    /// The v1 `devices.allow` line.
    pub fn v1(&self) -> String {
        let minor = self.minor.map_or("*".to_string(), |m| m.to_string());
        let access: String = [(2, 'r'), (4, 'w'), (1, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        format!(
            "{} {}:{minor} {access}",
            if self.block { 'b' } else { 'c' },
            self.major
        )
    }
}

/// The rules of the closed policy's static list and `allowed`, given /proc/devices. Nodes
/// that do not exist and classes /proc/devices does not name are left out, as systemd does.
pub fn rules(allowed: &[Device], proc_devices: &str) -> Vec<Rule> {
    unit::closed_policy_devices()
        .iter()
        .chain(allowed)
        .flat_map(|d| device_rules(d, proc_devices))
        .collect()
}

fn access_bits(modifier: &str) -> u32 {
    modifier.chars().fold(0, |acc, c| {
        acc | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

/// The rules of one `DeviceAllow=` entry.
fn device_rules(device: &Device, proc_devices: &str) -> Vec<Rule> {
    use std::os::unix::fs::FileTypeExt;
    let access = access_bits(&device.modifier);
    let class = |prefix: &str, section: &str, block: bool| -> Option<Vec<Rule>> {
        let name = device.node.strip_prefix(prefix)?;
        let mut in_section = false;
        let mut rules = Vec::new();
        for line in proc_devices.lines() {
            if line.ends_with("devices:") {
                in_section = line.starts_with(section);
                continue;
            }
            let mut words = line.split_whitespace();
            if let (true, Some(major), Some(n)) = (in_section, words.next(), words.next())
                && n == name
                && let Ok(major) = major.parse()
            {
                rules.push(Rule {
                    block,
                    major,
                    minor: None,
                    access,
                });
            }
        }
        Some(rules)
    };
    if let Some(rules) = class("char-", "Character", false) {
        return rules;
    }
    if let Some(rules) = class("block-", "Block", true) {
        return rules;
    }
    let Ok(meta) = fs::metadata(&device.node) else {
        return Vec::new();
    };
    let block = if meta.file_type().is_char_device() {
        false
    } else if meta.file_type().is_block_device() {
        true
    } else {
        return Vec::new();
    };
    let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
    vec![Rule {
        block,
        major: libc::major(rdev),
        minor: Some(libc::minor(rdev)),
        access,
    }]
}

/// Apply `rules` to the v1 `devices` cgroup `dir`: deny all, then allow each.
pub fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<()> {
    let write = |file: &str, value: &str| -> Result<()> {
        let path = dir.join(file);
        fs::write(&path, value)
            .map_err(|e| Error::io(format!("writing {value} to {}", path.display()), e))
    };
    write("devices.deny", "a")?;
    for rule in rules {
        write("devices.allow", &rule.v1())?;
    }
    Ok(())
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Opcodes: class | op | source.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54; // dst &= imm (32 bits)
const ALU32_RSH_K: u8 = 0x74; // dst >>= imm (32 bits)
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto pc + off
const JMP_JSET_K: u8 = 0x45; // if dst & imm goto pc + off
const JMP_EXIT: u8 = 0x95;

/// The program allowing `rules` and nothing else. Its context is `struct bpf_cgroup_dev_ctx`
/// { access_type: type | access << 16, major, minor }, type 1 block, 2 char; it returns 1
/// to allow, 0 to deny.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff), // r2: the type
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16), // r3: the access asked
        insn(LDX_MEM_W, 4, 1, 4, 0),    // r4: major
        insn(LDX_MEM_W, 5, 1, 8, 0),    // r5: minor
    ];
    for rule in rules {
        // Each test jumps past the rest of the rule when it does not match.
        let mut tests = vec![(2u8, JMP_JNE_K, if rule.block { 1 } else { 2 })];
        let refused = !rule.access & 7;
        if refused != 0 {
            tests.push((3, JMP_JSET_K, refused as i32));
        }
        tests.push((4, JMP_JNE_K, rule.major as i32));
        if let Some(minor) = rule.minor {
            tests.push((5, JMP_JNE_K, minor as i32));
        }
        let len = tests.len() + 2;
        for (i, (reg, op, imm)) in tests.into_iter().enumerate() {
            p.push(insn(op, reg, 0, (len - i - 1) as i16, imm));
        }
        p.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
        p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// `union bpf_attr` as BPF_PROG_LOAD reads it (the fields up to expected_attach_type; the rest
/// zero).
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    rest: [u8; 64],
}

/// `union bpf_attr` as BPF_PROG_ATTACH reads it.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    rest: [u8; 64],
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Load the program of `rules` and attach it to the cgroup2 directory `dir`. It stays
/// attached until the cgroup is removed.
pub fn apply_bpf(dir: &Path, rules: &[Rule]) -> Result<()> {
    let insns = program(rules);
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"ncsh_device");
    let load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
        rest: [0; 64],
    };
    // SAFETY: bpf(2) reads `load` (size given) and the buffers it points to, which outlive the
    // call, and writes at most log_size bytes to the log.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &load as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]).trim().to_string();
        return Err(Error::io(
            format!("loading the device policy's BPF program (verifier: {verifier})"),
            err,
        ));
    }
    // SAFETY: a new descriptor bpf(2) returned, owned here alone.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = fs::File::open(dir)
        .map_err(|e| Error::io(format!("opening cgroup {}", dir.display()), e))?;
    let attach = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        rest: [0; 64],
    };
    // SAFETY: bpf(2) reads `attach` (size given); both descriptors are open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!(
                "attaching the device policy's BPF program to {}",
                dir.display()
            ),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(node: &str, modifier: &str) -> Device {
        Device {
            node: node.into(),
            modifier: modifier.into(),
        }
    }

    #[test]
    fn rules_name_the_node_or_its_class() {
        let proc_devices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  7 loop\n";
        let v1 = |d: Device| -> Vec<String> {
            device_rules(&d, proc_devices)
                .iter()
                .map(Rule::v1)
                .collect()
        };
        assert_eq!(v1(dev("char-pts", "rw")), ["c 136:* rw"]);
        assert_eq!(v1(dev("block-loop", "r")), ["b 7:* r"]);
        assert!(v1(dev("char-loop", "r")).is_empty());
        assert_eq!(v1(dev("/dev/null", "rwm")), ["c 1:3 rwm"]);
        assert!(v1(dev("/dev/no-such-node", "r")).is_empty());
    }

    /// The program run by hand on a context, as the kernel would.
    fn run(p: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            assert!(src == 0 || src == 1);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU64_MOV_K => r[dst] = i.imm as u64,
                JMP_JNE_K if r[dst] != i.imm as u64 => pc += i.off as usize,
                JMP_JSET_K if r[dst] & i.imm as u64 != 0 => pc += i.off as usize,
                JMP_JNE_K | JMP_JSET_K => {}
                JMP_EXIT => return r[0],
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_program_allows_the_rules_only() {
        let rules = [
            Rule {
                block: false,
                major: 1,
                minor: Some(3),
                access: 7,
            },
            Rule {
                block: false,
                major: 136,
                minor: None,
                access: 6,
            },
            Rule {
                block: true,
                major: 7,
                minor: Some(0),
                access: 2,
            },
        ];
        let p = program(&rules);
        let ctx = |block: bool, access: u32, major: u32, minor: u32| {
            [if block { 1 } else { 2 } | access << 16, major, minor]
        };
        for (c, allowed) in [
            (ctx(false, 2, 1, 3), 1),
            (ctx(false, 7, 1, 3), 1),
            (ctx(false, 2, 1, 5), 0),
            (ctx(false, 6, 136, 9), 1),
            (ctx(false, 1, 136, 9), 0),
            (ctx(true, 2, 136, 9), 0),
            (ctx(true, 2, 7, 0), 1),
            (ctx(true, 4, 7, 0), 0),
            (ctx(false, 2, 10, 200), 0),
        ] {
            assert_eq!(run(&p, c), allowed, "{c:?}");
        }
        assert_eq!(run(&program(&[]), ctx(false, 2, 1, 3)), 0);
    }
}
