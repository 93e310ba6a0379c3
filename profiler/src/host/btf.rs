//! Just enough of a kernel BTF reader to find struct member offsets (aya-obj parses BTF but keeps
//! its types and members crate-private). Used for `task_struct.pid`, which the raw
//! `sched_switch` program reads from the `next` task pointer, and for the walk from a task to
//! the socket behind an fd (`SocketOffsets`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use profiler_common::SocketOffsets;

/// Path of the kernel's BTF; `PROFILER_BTF` overrides it.
pub fn btf_path() -> PathBuf {
    std::env::var_os("PROFILER_BTF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux"))
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

/// One member of a struct or union: name, type id, bit offset (bitfield size masked off).
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

/// A struct or union, by type id.
struct Composite {
    name_off: u32,
    is_struct: bool,
    members: Vec<Member>,
}

/// The structs and unions of a BTF blob, indexed by type id (other kinds are `None`).
pub struct Btf {
    strings: Vec<u8>,
    types: Vec<Option<Composite>>,
}

fn u16_at(data: &[u8], at: usize) -> Result<u16> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| anyhow!("BTF truncated at byte {at}"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| anyhow!("BTF truncated at byte {at}"))
}

impl Btf {
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&data).with_context(|| format!("parsing BTF in {}", path.display()))
    }

    /// Parses a little-endian BTF blob (`/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Self> {
        if u16_at(data, 0)? != BTF_MAGIC {
            bail!("not little-endian BTF (bad magic)");
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| anyhow!("BTF section out of bounds"))
        };
        let type_data = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();
        // Type id 0 is `void`.
        let mut types = vec![None];
        let mut at = 0;
        while at < type_data.len() {
            let name_off = u32_at(type_data, at)?;
            let info = u32_at(type_data, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kflag = info >> 31 != 0;
            at += 12;
            let mut entry = None;
            at += match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(type_data, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(type_data, m)?,
                            type_id: u32_at(type_data, m + 4)?,
                            // With kflag, the top 8 bits are a bitfield size.
                            bit_offset: if kflag { offset & 0xff_ffff } else { offset },
                        });
                    }
                    entry = Some(Composite {
                        name_off,
                        is_struct: kind == KIND_STRUCT,
                        members,
                    });
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG.
                2 | 7..=12 | 16 | 18 => 0,
                other => bail!("unknown BTF kind {other} at type {}", types.len()),
            };
            types.push(entry);
        }
        Ok(Self { strings, types })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Byte offset of member `member` of `struct name`, looking through anonymous struct and
    /// union members (randomized layouts wrap fields in them).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32> {
        let id = self
            .types
            .iter()
            .position(|t| {
                t.as_ref()
                    .is_some_and(|c| c.is_struct && self.name(c.name_off) == name.as_bytes())
            })
            .ok_or_else(|| anyhow!("no struct {name} in BTF"))?;
        let bits = self
            .find_member(id, member.as_bytes(), 0)
            .ok_or_else(|| anyhow!("struct {name} has no member {member} in BTF"))?;
        if bits % 8 != 0 {
            bail!("{name}.{member} is a bitfield");
        }
        Ok(bits / 8)
    }

    fn find_member(&self, id: usize, member: &[u8], depth: u32) -> Option<u32> {
        let composite = self.types.get(id)?.as_ref()?;
        for m in &composite.members {
            if m.name_off == 0 && depth < 8 {
                if let Some(bits) = self.find_member(m.type_id as usize, member, depth + 1) {
                    return Some(m.bit_offset + bits);
                }
            } else if self.name(m.name_off) == member {
                return Some(m.bit_offset);
            }
        }
        None
    }
}

/// Offsets in `struct task_struct` that the raw `sched_switch` reads, from kernel BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
    /// `se.sum_exec_runtime` (0 when BTF does not have it: switch-to-switch timing then).
    pub sum_exec_runtime: u32,
}

/// `task_struct` offsets from the kernel BTF at `path`.
pub fn task_offsets(path: &Path) -> Result<TaskOffsets> {
    let btf = Btf::read(path)?;
    let pid = btf.member_offset("task_struct", "pid")?;
    let tgid = btf.member_offset("task_struct", "tgid")?;
    if pid == 0 || tgid == 0 {
        bail!("task_struct.pid or tgid at offset 0 (unexpected layout)");
    }
    let sum_exec_runtime = btf
        .member_offset("task_struct", "se")
        .and_then(|se| Ok(se + btf.member_offset("sched_entity", "sum_exec_runtime")?))
        .unwrap_or(0);
    Ok(TaskOffsets {
        pid,
        tgid,
        sum_exec_runtime,
    })
}

/// The offsets for resolving an fd to its socket and reading a connection's addresses in the
/// kernel (`profiler_common::SocketOffsets`), from the kernel BTF at `path`.
pub fn socket_offsets(path: &Path) -> Result<SocketOffsets> {
    let btf = Btf::read(path)?;
    let at = |s: &str, m: &str| btf.member_offset(s, m);
    let v6 = (
        at("sock_common", "skc_v6_rcv_saddr"),
        at("sock_common", "skc_v6_daddr"),
    );
    let (v6_valid, (skc_v6_rcv_saddr, skc_v6_daddr)) = match v6 {
        (Ok(local), Ok(peer)) => (1, (local, peer)),
        // A kernel without IPv6: IPv6 connections have no addresses.
        _ => (0, (0, 0)),
    };
    Ok(SocketOffsets {
        valid: 1,
        v6_valid,
        task_files: at("task_struct", "files")?,
        files_fdt: at("files_struct", "fdt")?,
        fdt_max_fds: at("fdtable", "max_fds")?,
        fdt_fd: at("fdtable", "fd")?,
        file_inode: at("file", "f_inode")?,
        file_private_data: at("file", "private_data")?,
        inode_mode: at("inode", "i_mode")?,
        socket_type: at("socket", "type")?,
        socket_sk: at("socket", "sk")?,
        skc_family: at("sock_common", "skc_family")?,
        sk_type: at("sock", "sk_type").unwrap_or(0),
        skc_num: at("sock_common", "skc_num")?,
        skc_dport: at("sock_common", "skc_dport")?,
        skc_rcv_saddr: at("sock_common", "skc_rcv_saddr")?,
        skc_daddr: at("sock_common", "skc_daddr")?,
        skc_v6_rcv_saddr,
        skc_v6_daddr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `int` and
    /// `struct task_struct { int state; union { struct { int a; int pid; }; }; }`: pid at byte 8.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0a\0pid\0task_struct\0state\0".to_vec();
        let s = |name: &str| {
            let pat = [name.as_bytes(), b"\0"].concat();
            (1..strings.len())
                .find(|&i| strings[i - 1] == 0 && strings[i..].starts_with(&pat))
                .unwrap() as u32
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_le_bytes()));
        // 1: int (4 bytes, signed).
        push(&[s("int"), KIND_INT << 24, 4, (1 << 24) | 32]);
        // 2: anonymous struct { int a; int pid; }.
        push(&[0, (KIND_STRUCT << 24) | 2, 8]);
        push(&[s("a"), 1, 0, s("pid"), 1, 32]);
        // 3: anonymous union { struct { ... }; }.
        push(&[0, (KIND_UNION << 24) | 1, 8, 0, 2, 0]);
        // 4: struct task_struct { int state; <pad>; union at byte 4 }.
        push(&[s("task_struct"), (KIND_STRUCT << 24) | 2, 12]);
        push(&[s("state"), 1, 0, 0, 3, 32]);
        let mut out = Vec::new();
        out.extend(BTF_MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(w.to_le_bytes());
        }
        out.extend(&types);
        out.extend(&strings);
        out
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("task_struct", "state").unwrap(), 0);
        assert_eq!(btf.member_offset("task_struct", "pid").unwrap(), 8);
        assert!(btf.member_offset("task_struct", "tgid").is_err());
        assert!(btf.member_offset("mm_struct", "pid").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"hello world, not btf at all").is_err());
        let mut truncated = blob();
        truncated.truncate(40);
        assert!(Btf::parse(&truncated).is_err());
    }

    #[test]
    fn reads_this_kernels_task_struct() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.is_file() {
            return;
        }
        let btf = Btf::read(path).unwrap();
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        // pid_t pid; pid_t tgid; are adjacent in every kernel.
        assert_eq!(tgid, pid + 4);
        let offsets = task_offsets(path).unwrap();
        assert_eq!((offsets.pid, offsets.tgid), (pid, tgid));
        assert!(offsets.sum_exec_runtime > 0);
    }
}
