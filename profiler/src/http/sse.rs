//! SSE event splitting and usage extraction. (stub)
