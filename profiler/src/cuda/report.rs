//! (being written) the CUDA report section.
