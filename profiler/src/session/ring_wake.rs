//! Wakeups from the ring buffers' producers: the loop drains every `DRAIN_MS`, and sooner when
//! a ring is half full (the eBPF side then writes with `BPF_RB_FORCE_WAKEUP`, which makes the
//! ring's fd readable). Privileged I/O (epoll on map fds).

use std::{
    future::poll_fn,
    os::fd::{BorrowedFd, OwnedFd},
    task::Poll,
};

use tokio::io::{Interest, unix::AsyncFd};

/// The rings the loop waits on.
pub struct RingWake {
    fds: Vec<AsyncFd<OwnedFd>>,
}

impl RingWake {
    /// Registers each ring with the runtime's reactor (a duplicate of its fd, so the capture
    /// keeps its own); call inside the runtime. A ring that cannot be registered is left to the
    /// timer.
    pub fn new<'a>(rings: impl IntoIterator<Item = BorrowedFd<'a>>) -> Self {
        let fds = rings
            .into_iter()
            .filter_map(|fd| fd.try_clone_to_owned().ok())
            // SAFETY: the OwnedFd is valid, open, and owned by the AsyncFd for its whole life.
            .filter_map(|fd| {
                unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
            })
            .collect();
        Self { fds }
    }

    /// Resolves when a producer woke a ring (never, with none registered). Readiness is cleared
    /// before the caller drains, so a wakeup during the drain is not lost: it resolves again.
    pub async fn woken(&self) {
        poll_fn(|cx| {
            let mut woken = false;
            for fd in &self.fds {
                if let Poll::Ready(Ok(mut guard)) = fd.poll_read_ready(cx) {
                    guard.clear_ready();
                    woken = true;
                }
            }
            if woken {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}
