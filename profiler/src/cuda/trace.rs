//! (being written) `--cuda-trace` JSONL writer.
