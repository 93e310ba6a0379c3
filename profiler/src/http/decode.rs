//! Socket ring-buffer records to typed events: the fixed header, the captured bytes after it and
//! the connection's addresses some records end with. Pure; never panics on short input.

use std::mem::size_of;

use profiler_common::{ConnAddrs, SockEventHeader};

/// One decoded ring-buffer record.
#[derive(Debug, Clone, Copy)]
pub struct SockEvent<'a> {
    pub header: SockEventHeader,
    /// The transfer's leading captured bytes.
    pub data: &'a [u8],
    /// Its last bytes, when the kernel captured them apart (the bytes between were not).
    pub tail: &'a [u8],
    /// The TCP connection's addresses, on the first transfer the kernel saw of it on this fd.
    pub addrs: Option<ConnAddrs>,
}

/// Decodes a ring-buffer record; `None` for a record too short for its header. Never panics.
pub fn decode(bytes: &[u8]) -> Option<SockEvent<'_>> {
    let hdr_len = size_of::<SockEventHeader>();
    let header: SockEventHeader = crate::util::pod::read_record(bytes)?;
    let rest = &bytes[hdr_len..];
    let n = (header.captured as usize).min(rest.len());
    let (data, rest) = rest.split_at(n);
    let t = usize::from(header.tail).min(rest.len());
    let (tail, rest) = rest.split_at(t);
    let addrs = if header.addrs == 1 {
        crate::util::pod::read_record::<ConnAddrs>(rest)
    } else {
        None
    };
    Some(SockEvent {
        header,
        data,
        tail,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use profiler_common::{CONN_ADDRS_SIZE, SOCK_EVENT_HEADER_SIZE};

    use super::*;

    fn record(captured: &[u8], tail: &[u8], addrs: Option<&ConnAddrs>) -> Vec<u8> {
        let header = SockEventHeader {
            captured: captured.len() as u32,
            tail: tail.len() as u16,
            addrs: u8::from(addrs.is_some()),
            ..SockEventHeader::default()
        };
        // SAFETY: both are plain integers; viewing them as bytes is always valid.
        let as_bytes = |p: *const u8, n: usize| unsafe { std::slice::from_raw_parts(p, n) };
        let mut out = as_bytes(
            (&header as *const SockEventHeader).cast(),
            SOCK_EVENT_HEADER_SIZE,
        )
        .to_vec();
        out.extend_from_slice(captured);
        out.extend_from_slice(tail);
        if let Some(a) = addrs {
            out.extend_from_slice(as_bytes((a as *const ConnAddrs).cast(), CONN_ADDRS_SIZE));
        }
        out
    }

    #[test]
    fn addresses_follow_the_tail_when_flagged() {
        let addrs = ConnAddrs {
            family: 2,
            sport: 80,
            dport: 50_000,
            ..ConnAddrs::default()
        };
        let bytes = record(b"GET / HTTP/1.1\r\n", b"end", Some(&addrs));
        let ev = decode(&bytes).expect("a whole record");
        assert_eq!(ev.data, b"GET / HTTP/1.1\r\n");
        assert_eq!(ev.tail, b"end");
        assert_eq!(ev.addrs, Some(addrs));
        let plain = record(b"abc", b"", None);
        assert_eq!(decode(&plain).expect("a whole record").addrs, None);
    }

    #[test]
    fn a_cut_record_loses_what_is_missing_never_panics() {
        let addrs = ConnAddrs {
            family: 10,
            ..ConnAddrs::default()
        };
        let bytes = record(b"0123456789", b"tail", Some(&addrs));
        for len in 0..bytes.len() {
            let ev = decode(&bytes[..len]);
            assert_eq!(ev.is_some(), len >= SOCK_EVENT_HEADER_SIZE, "cut at {len}");
            if let Some(ev) = ev {
                assert_eq!(ev.addrs, None, "cut at {len}: addresses need all 40 bytes");
            }
        }
        assert_eq!(decode(&bytes).expect("whole").addrs, Some(addrs));
    }
}
