//! Socket ring-buffer records to typed events: the fixed header and the captured bytes after
//! it. Pure; never panics on short input.

use std::mem::size_of;

use profiler_common::SockEventHeader;

/// One decoded ring-buffer record.
#[derive(Debug, Clone, Copy)]
pub struct SockEvent<'a> {
    pub header: SockEventHeader,
    /// The transfer's leading captured bytes.
    pub data: &'a [u8],
    /// Its last bytes, when the kernel captured them apart (the bytes between were not).
    pub tail: &'a [u8],
}

/// Decodes a ring-buffer record; `None` for a record too short for its header. Never panics.
pub fn decode(bytes: &[u8]) -> Option<SockEvent<'_>> {
    let hdr_len = size_of::<SockEventHeader>();
    let header: SockEventHeader = crate::util::pod::read_record(bytes)?;
    let rest = &bytes[hdr_len..];
    let n = (header.captured as usize).min(rest.len());
    let (data, rest) = rest.split_at(n);
    let t = usize::from(header.tail).min(rest.len());
    Some(SockEvent {
        header,
        data,
        tail: &rest[..t],
    })
}
