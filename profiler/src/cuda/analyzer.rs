//! (being written) CUDA events → aggregates.
