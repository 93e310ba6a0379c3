//! Which processes and threads the trace has events on, and the metadata events naming them.
//!
//! Tracks in the viewer: each watched thread's own track (pid, tid) holds its on-CPU slices;
//! a thread's CUDA calls go on a sibling track with a synthetic tid ([`cuda_track_tid`]), since
//! a call that blocks spans several on-CPU slices and slices on one track must nest; requests are
//! async slices of their process.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    event::{MetaArgs, metadata},
    writer::TraceWriter,
};

/// Set in the tid of a thread's CUDA track. Linux tids stay below 2^22 (`PID_MAX_LIMIT`).
pub const CUDA_TRACK_BIT: u32 = 1 << 30;

/// The synthetic tid of thread `tid`'s CUDA track.
pub const fn cuda_track_tid(tid: u32) -> u32 {
    tid | CUDA_TRACK_BIT
}

#[derive(Debug, Default)]
pub struct Tracks {
    processes: BTreeSet<u32>,
    /// (pid, tid) → has a CUDA track.
    threads: BTreeMap<(u32, u32), bool>,
}

impl Tracks {
    pub fn process(&mut self, pid: u32) {
        self.processes.insert(pid);
    }

    pub fn thread(&mut self, pid: u32, tid: u32) {
        self.processes.insert(pid);
        self.threads.entry((pid, tid)).or_insert(false);
    }

    pub fn cuda_thread(&mut self, pid: u32, tid: u32) {
        self.processes.insert(pid);
        self.threads.insert((pid, tid), true);
    }

    pub fn process_count(&self) -> usize {
        self.processes.len()
    }

    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Writes `process_name`, `thread_name` and `thread_sort_index` (a thread's CUDA track right
    /// below it in viewers that honour it) for every track used. `name_of(pid, tid)`: a thread's
    /// `comm` (`name_of(pid, pid)` names the process); unnamed ones show their id.
    pub fn write_names(&self, w: &mut TraceWriter, name_of: &dyn Fn(u32, u32) -> Option<String>) {
        for &pid in &self.processes {
            let name = name_of(pid, pid).unwrap_or_else(|| format!("pid {pid}"));
            w.write_metadata(&metadata("process_name", (pid, pid), named(&name)));
        }
        for (&(pid, tid), &cuda) in &self.threads {
            let name = name_of(pid, tid).unwrap_or_else(|| format!("tid {tid}"));
            let sort = i64::from(tid) * 2;
            w.write_metadata(&metadata("thread_name", (pid, tid), named(&name)));
            w.write_metadata(&metadata("thread_sort_index", (pid, tid), sorted(sort)));
            if cuda {
                let cuda_tid = cuda_track_tid(tid);
                let label = format!("{name} [{tid}] CUDA calls");
                w.write_metadata(&metadata("thread_name", (pid, cuda_tid), named(&label)));
                w.write_metadata(&metadata(
                    "thread_sort_index",
                    (pid, cuda_tid),
                    sorted(sort + 1),
                ));
            }
        }
    }
}

fn named(name: &str) -> MetaArgs<'_> {
    MetaArgs {
        name: Some(name),
        sort_index: None,
    }
}

fn sorted(index: i64) -> MetaArgs<'static> {
    MetaArgs {
        name: None,
        sort_index: Some(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::timeline::testing::MemorySink;

    #[test]
    fn names_every_process_and_thread_once() {
        let mut t = Tracks::default();
        t.thread(10, 11);
        t.thread(10, 11);
        t.cuda_thread(10, 12);
        t.process(20);
        assert_eq!((t.process_count(), t.thread_count()), (2, 2));
        let sink = MemorySink::default();
        let mut w = TraceWriter::new(Box::new(sink.clone()), 0);
        let names = |pid: u32, tid: u32| match (pid, tid) {
            (10, 10) => Some("server".to_owned()),
            (10, 11) => Some("worker".to_owned()),
            (10, 12) => Some("gpu".to_owned()),
            _ => None,
        };
        t.write_names(&mut w, &names);
        w.close(&serde_json::json!({})).unwrap();
        let v = sink.json();
        let names: Vec<(String, u64, u64, String)> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] != "thread_sort_index")
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["pid"].as_u64().unwrap(),
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let cuda = u64::from(cuda_track_tid(12));
        assert_eq!(
            names,
            vec![
                ("process_name".into(), 10, 10, "server".into()),
                ("process_name".into(), 20, 20, "pid 20".into()),
                ("thread_name".into(), 10, 11, "worker".into()),
                ("thread_name".into(), 10, 12, "gpu".into()),
                ("thread_name".into(), 10, cuda, "gpu [12] CUDA calls".into()),
            ]
        );
        // Metadata is never counted against the limit (0 here).
        assert_eq!(w.written(), 0);
    }
}
