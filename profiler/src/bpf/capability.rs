//! The one trait the session loop iterates over: what every capture (HTTP, CUDA, the
//! timeline, the hardware samplers) does on the loop's ticks. Typed start and finish stay with
//! each capture (their configs and report sections differ); the loop needs only these.

use std::os::fd::BorrowedFd;

use crate::bpf::Probes;

pub trait Capability {
    /// Hands the records queued in the capture's ring buffers to its analysis (every
    /// `DRAIN_MS`, or when a ring's producer wakes the loop).
    fn drain(&mut self, _probes: &mut Probes) {}

    /// The ring buffers whose producers wake the loop when they are half full.
    fn wake_fds(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }

    /// Housekeeping on the 50 ms poll tick (rescans, following new threads); `watched` is the
    /// kernel's set of watched processes.
    fn poll(&mut self, _probes: &mut Probes, _watched: &[u32]) {}

    /// Every probe is attached: the session's window (`duration_s`) starts now. What was
    /// counted while the probes went in one after the other is dropped.
    fn open_window(&mut self, _probes: &mut Probes) {}

    /// `pid` is watched from now on (the daemon found it after the start).
    fn process_added(&mut self, _probes: &mut Probes, _pid: u32) {}

    /// `pid` exited and is being forgotten (the daemon): drop what is kept for it.
    fn forget_process(&mut self, _probes: &mut Probes, _pid: u32) {}
}
