//! The CUDA capture's maps: the call and name ring buffers, and the cookies filed by address
//! on kernels without attach cookies (its uprobes are declared in `symbols.rs` and attached by
//! `attach.rs`). Privileged I/O on the maps.

use std::{
    collections::HashMap,
    os::fd::{AsFd, BorrowedFd},
};

use anyhow::Result;
use aya::maps::{HashMap as BpfHashMap, MapData, RingBuf};
use profiler_common::{CudaProbeAddr, counter, map_name};

use crate::bpf::Probes;

/// The CUDA capture's ring buffers, taken out of the object at start.
pub struct CudaMaps {
    events: RingBuf<MapData>,
    names: RingBuf<MapData>,
}

impl CudaMaps {
    pub fn take(probes: &mut Probes) -> Result<Self> {
        Ok(Self {
            events: RingBuf::try_from(probes.take_map(map_name::CUDA_EVENTS)?)?,
            names: RingBuf::try_from(probes.take_map(map_name::CUDA_NAMES)?)?,
        })
    }

    /// Both ring buffers, for the loop to wait on (their producers wake it when half full: a
    /// module load can name thousands of kernels at once).
    pub fn wake_fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.names.as_fd(), self.events.as_fd()]
    }

    /// Hands every queued name record (`is_name` true), then every call record, to `f`: names
    /// first, so a launch never arrives before the lookup that named it (except for a lookup
    /// made while this drains; the analyzer renames such launches later).
    pub fn drain(&mut self, mut f: impl FnMut(bool, &[u8])) {
        while let Some(item) = self.names.next() {
            f(true, &item);
        }
        while let Some(item) = self.events.next() {
            f(false, &item);
        }
    }
}

/// Set (not "0") to tell the CUDA probes apart by address even where attach cookies work (tests
/// of the pre-5.15 path on a newer kernel).
pub const BY_ADDRESS_ENV: &str = "PROFILER_CUDA_COOKIES_BY_ADDRESS";

/// Whether the CUDA entry probes run `cuda_enter_by_address` (no attach cookies here, or forced).
pub fn cookies_by_address() -> bool {
    !crate::bpf::probes::attach_cookies_supported()
        || std::env::var_os(BY_ADDRESS_ENV).is_some_and(|v| v != "0")
}

/// Which probe ran, for kernels without attach cookies (before 5.15): `cuda_enter_by_address`
/// looks its cookie up under (process, probed address).
pub struct CookiesByAddress {
    map: BpfHashMap<MapData, CudaProbeAddr, u64>,
    /// The keys filed per process, removed when it goes.
    filed: HashMap<u32, Vec<CudaProbeAddr>>,
}

impl CookiesByAddress {
    pub fn take(probes: &mut Probes) -> Result<Self> {
        Ok(Self {
            map: BpfHashMap::try_from(probes.take_map(map_name::CUDA_PROBE_COOKIES)?)?,
            filed: HashMap::new(),
        })
    }

    /// Files `cookie` for the probe at `ip` in process `tgid`.
    pub fn file(&mut self, tgid: u32, ip: u64, cookie: u64) -> Result<()> {
        let key = CudaProbeAddr { tgid, _pad: 0, ip };
        self.map.insert(key, cookie, 0)?;
        self.filed.entry(tgid).or_default().push(key);
        Ok(())
    }

    pub fn forget_process(&mut self, tgid: u32) {
        for key in self.filed.remove(&tgid).unwrap_or_default() {
            let _ = self.map.remove(&key);
        }
    }
}

/// CUDA call or name records the kernel could not queue (a ring buffer full).
pub fn cuda_events_lost(probes: &Probes) -> u64 {
    probes.counter(counter::CUDA_EVENTS_LOST)
}

/// Timed calls whose entry record was replaced before their return.
pub fn cuda_calls_unfinished(probes: &Probes) -> u64 {
    probes.counter(counter::CUDA_CALLS_UNFINISHED)
}
