//! perf_event_open(2) on other threads, and group reads. perf-event 0.4's `Group` can only
//! watch the calling process, so the groups are opened here with the raw system call; the
//! `perf_event_attr` still comes from perf-event's `Builder` (correct size and layout).

use std::{
    fs::File,
    io::{self, Read as _},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
};

use perf_event::Builder;

use super::{
    arith::Reading,
    events::{EventId, EventSpec, Family},
};

// linux/perf_event.h
const FORMAT_TOTAL_TIME_ENABLED: u64 = 1;
const FORMAT_TOTAL_TIME_RUNNING: u64 = 2;
const FORMAT_GROUP: u64 = 8;
const FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// The calling thread, for `open_event`.
pub const SELF: i32 = 0;

/// Opens one counting event on thread `tid` (any CPU), enabled at once, in the group led by
/// `group_fd` (or leading a new group when `None`).
pub fn open_event(
    spec: &EventSpec,
    tid: i32,
    group_fd: Option<RawFd>,
    include_kernel: bool,
) -> io::Result<OwnedFd> {
    let mut builder = Builder::new();
    let attr = builder.attrs_mut();
    attr.type_ = spec.type_;
    attr.config = spec.config;
    attr.set_disabled(0);
    attr.set_inherit(0);
    attr.set_exclude_kernel(u64::from(!include_kernel));
    attr.set_exclude_hv(1);
    attr.read_format = FORMAT_TOTAL_TIME_ENABLED | FORMAT_TOTAL_TIME_RUNNING | FORMAT_GROUP;
    let attr: *mut _ = attr;
    // SAFETY: `attr` points to a fully initialised perf_event_attr owned by `builder`, which
    // outlives the call; its `size` field matches the struct, and the kernel writes at most
    // that many bytes back (the size, on E2BIG). The other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr,
            tid as libc::pid_t,
            -1 as libc::c_int,
            group_fd.unwrap_or(-1) as libc::c_int,
            FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// One family's events on one thread: a leader and its members, read together.
#[derive(Debug)]
pub struct OpenGroup {
    leader: File,
    /// Kept open: closing a member removes it from the group.
    _members: Vec<OwnedFd>,
    /// Events in the order a group read returns them (leader, then members as added).
    ids: Vec<EventId>,
    last: Vec<Reading>,
}

impl OpenGroup {
    /// Opens every event of `family` on `tid`. Fails as a whole if any event fails (the
    /// event set was probed at start-up, so a failure here means the thread is gone
    /// (ESRCH), the target is not accessible or descriptors ran out).
    pub fn open(family: &Family, tid: i32, include_kernel: bool) -> io::Result<Self> {
        let mut events = family.events.iter();
        let Some(first) = events.next() else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let leader = File::from(open_event(first, tid, None, include_kernel)?);
        let mut members = Vec::with_capacity(family.events.len() - 1);
        for e in events {
            members.push(open_event(
                e,
                tid,
                Some(leader.as_raw_fd()),
                include_kernel,
            )?);
        }
        Ok(Self {
            leader,
            _members: members,
            ids: family.events.iter().map(|e| e.id).collect(),
            last: vec![Reading::default(); family.events.len()],
        })
    }

    /// Reads the group and returns what each event gathered since the previous read.
    pub fn read_delta(&mut self) -> io::Result<Vec<(EventId, Reading)>> {
        let now = self.read()?;
        let out = self
            .ids
            .iter()
            .zip(now.iter().zip(&self.last))
            .map(|(&id, (n, p))| (id, n.delta_since(p)))
            .collect();
        self.last = now;
        Ok(out)
    }

    fn read(&mut self) -> io::Result<Vec<Reading>> {
        // PERF_FORMAT_GROUP layout: nr, time_enabled, time_running, value[nr].
        let mut buf = vec![0u8; 8 * (3 + self.ids.len())];
        let n = self.leader.read(&mut buf)?;
        let words: Vec<u64> = buf[..n]
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8-byte chunk")))
            .collect();
        let [nr, enabled, running, values @ ..] = words.as_slice() else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short group read",
            ));
        };
        let nr = (*nr as usize).min(values.len());
        if nr != self.ids.len() {
            return Err(io::Error::other(format!(
                "group read returned {nr} counters, expected {}",
                self.ids.len()
            )));
        }
        Ok(values[..nr]
            .iter()
            .map(|&value| Reading {
                value,
                time_enabled_ns: *enabled,
                time_running_ns: *running,
            })
            .collect())
    }
}

/// The calling thread's id.
#[cfg(test)]
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u32 }
}
