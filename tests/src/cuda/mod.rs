//! Harness for the CUDA end-to-end tests. CI has no GPU: the tests build, with the system C
//! compiler, a stand-in driver `libcuda.so.1` (tests/cuda/stub_cuda.c: the real driver API
//! symbols and C signatures, fake handles, host time set by environment variables), a stand-in
//! runtime `libcudart.so.12` (tests/cuda/stub_cudart.c: `cudaLaunchKernel` doing what the CUDA
//! 12 runtime does underneath) and `cuda-workload` (tests/cuda/cuda_workload.c), a program that
//! dlopen()s both and calls them a known number of times; `cuda-workload-static` is the same
//! program with the runtime linked in (it loads the driver only). The scenario's numbers live
//! here and in the program's `#define`s; [`assert_truth_matches_scenario`] checks that the two
//! agree with what the stub libraries counted themselves.
//!
//! Needs `cc` (Debian package gcc); without it the tests record a skip.
//!
//! - [`scenario`]: the scenario's numbers (mirroring the C `#define`s) and what the report
//!   must say about them;
//! - [`apis`]: the API families and symbols: probed, reported, timed;
//! - [`build`]: compiling the stubs and workloads once per test binary;
//! - [`run`]: profiler sessions over the workload (`run`, `attach`) and the workload alone;
//! - [`report`]: reading report fields;
//! - [`assert`], [`kernels`], [`timing`]: assertions on counts, kernels and host times.

pub mod apis;
pub mod assert;
pub mod build;
pub mod kernels;
pub mod report;
pub mod run;
pub mod scenario;
pub mod timing;

pub use apis::*;
pub use assert::*;
pub use build::*;
pub use kernels::*;
pub use report::*;
pub use run::*;
pub use scenario::*;
pub use timing::*;
