// The library target exists so `profiler` can declare a build-dependency on this crate and be
// rebuilt when it changes; the programs themselves are in the `profiler-probes` binary.
#![no_std]
