//! The CUDA capture's maps: the call and name ring buffers (its uprobes are declared in
//! `symbols.rs` and attached by `attach.rs`). Privileged I/O on the maps.

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use profiler_common::{counter, map_name};

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

/// CUDA call or name records the kernel could not queue (a ring buffer full).
pub fn cuda_events_lost(probes: &Probes) -> u64 {
    probes.counter(counter::CUDA_EVENTS_LOST)
}

/// Timed calls whose entry record was replaced before their return.
pub fn cuda_calls_unfinished(probes: &Probes) -> u64 {
    probes.counter(counter::CUDA_CALLS_UNFINISHED)
}
