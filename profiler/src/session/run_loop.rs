//! The session's loop: every interval read the kernel and /proc, refresh the live view and the
//! exporter; every 50 ms, or when a ring buffer is half full, drain the captures' ring buffers;
//! every 50 ms let the captures poll and check whether the targets are gone; until a signal,
//! the duration or the targets' exit.

use std::{
    process::Child,
    time::{Duration, Instant},
};

use anyhow::Result;
use profiler_common::DRAIN_MS;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    bpf::Probes,
    sched::tracker::Tracker,
    session::{
        Config, daemon,
        discovery::Discovery,
        ring_wake::RingWake,
        start::Captures,
        watch::{collect, targets_exited},
    },
    sinks::{
        live::LiveView,
        prometheus::{
            Exporter,
            feed::{self, FeedInputs},
        },
        report::EndReason,
    },
};

/// How often target exit is checked and the captures poll, independently of the interval.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// How often the ring buffers are drained when no producer wakes the loop sooner.
const DRAIN: Duration = Duration::from_millis(DRAIN_MS);

/// What the loop works on besides the captures.
pub(crate) struct Loop<'a> {
    pub probes: &'a mut Probes,
    pub tracker: &'a mut Tracker,
    pub captures: &'a mut Captures,
    pub metrics: Option<&'a Exporter>,
    pub discovery: &'a mut Option<Discovery>,
    pub child: &'a mut Option<Child>,
    pub live: &'a mut LiveView,
    pub config: &'a Config,
    pub started: Instant,
}

impl Loop<'_> {
    pub(crate) async fn run(&mut self) -> Result<EndReason> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let start = tokio::time::Instant::now();
        let interval = self.config.interval;
        let mut tick = tokio::time::interval_at(start + interval, interval);
        // A delayed agent catches up with one read, not a burst of back-to-back ones.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut exit_poll = tokio::time::interval(EXIT_POLL);
        let mut drain = tokio::time::interval(DRAIN);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wake = RingWake::new(self.captures.all().iter().flat_map(|c| c.wake_fds()));
        let duration = self.config.duration;
        let deadline = async {
            match duration {
                Some(d) => tokio::time::sleep_until(start + d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = sigint.recv() => return Ok(EndReason::Interrupted),
                _ = sigterm.recv() => return Ok(EndReason::Terminated),
                () = &mut deadline => return Ok(EndReason::Duration),
                _ = tick.tick() => self.on_interval(),
                _ = drain.tick() => self.drain(),
                () = wake.woken() => {
                    self.drain();
                    drain.reset();
                }
                _ = exit_poll.tick() => {
                    if self.on_poll() {
                        return Ok(EndReason::TargetExited);
                    }
                }
            }
        }
    }

    /// Every capture's queued records to its analysis.
    fn drain(&mut self) {
        for c in self.captures.all() {
            c.drain(self.probes);
        }
    }

    /// The interval's figures to the live view and the exporter.
    fn on_interval(&mut self) {
        collect(self.probes, self.tracker, self.started);
        let probes = &mut *self.probes;
        let captures = &mut *self.captures;
        let requests = captures.http.as_mut().map(|h| h.take_interval(probes));
        let gpu = captures.cuda.as_mut().map(|c| c.take_interval(probes));
        let notes = captures
            .hardware
            .sample(&probes.watched(), self.config.interval.as_secs_f64());
        if let Some(m) = self.metrics {
            export(m, probes, self.tracker, captures);
        }
        if self.discovery.is_some() {
            daemon::forget_exited(probes, self.tracker, &mut captures.all());
        }
        self.live.show(
            self.tracker,
            requests.as_ref(),
            gpu.as_ref(),
            &notes,
            self.started.elapsed().as_secs_f64(),
        );
    }

    /// The 50 ms housekeeping; true when the targets are gone.
    fn on_poll(&mut self) -> bool {
        let watched = self.probes.watched();
        for c in self.captures.all() {
            c.poll(self.probes, &watched);
        }
        if let Some(d) = self.discovery.as_mut()
            && d.due()
        {
            let at_s = self.started.elapsed().as_secs_f64();
            daemon::watch_new(d, self.probes, self.tracker, &mut self.captures.all(), at_s);
            if let Some(m) = self.metrics {
                m.sync_processes(self.tracker);
            }
        }
        self.discovery.is_none() && targets_exited(self.tracker, self.child)
    }
}

/// Hands this interval's figures to the exporter.
fn export(exporter: &Exporter, probes: &Probes, tracker: &Tracker, captures: &Captures) {
    exporter.sync_processes(tracker);
    let active = captures.http.as_ref().map(|h| h.server_in_flight_by_pid());
    feed::refresh(
        exporter,
        FeedInputs {
            tracker,
            hardware: &captures.hardware,
            active_requests: active.as_ref(),
            probes: feed::probe_rows(probes, captures.http.is_some()),
        },
    );
}
