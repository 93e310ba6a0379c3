//! Which body framing a head announces, per RFC 9112 §6.3 (no I/O).
//!
//! None, a length, chunked, until the close, or unframable; and what a response head means for
//! its exchange (interim, protocol switch, final).

use super::head::HeadInfo;
use super::line::Method;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the message ends with its head.
    Empty,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
    /// Cannot be framed (bad Content-Length, unknown transfer coding on a request).
    Unknown,
}

/// Body framing of a request (RFC 9112 §6.3).
pub fn request_framing(h: &HeadInfo) -> Framing {
    if h.te_present {
        if h.chunked {
            Framing::Chunked
        } else {
            Framing::Unknown
        }
    } else if h.content_length_invalid {
        Framing::Unknown
    } else {
        match h.content_length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    }
}

/// What a response head means for the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// 1xx other than 101: another head follows.
    Interim,
    /// 101, or 2xx to CONNECT: the connection leaves HTTP after this head.
    Switch,
    Final(Framing),
}

/// Body framing of a response to a request with the given method (RFC 9112 §6.3).
pub fn response_kind(status: u16, h: &HeadInfo, method: &Method) -> ResponseKind {
    if status == 101 || (method.is(b"CONNECT") && (200..300).contains(&status)) {
        return ResponseKind::Switch;
    }
    if (100..200).contains(&status) {
        return ResponseKind::Interim;
    }
    if method.is(b"HEAD") || status == 204 || status == 304 {
        return ResponseKind::Final(Framing::Empty);
    }
    let framing = if h.te_present {
        if h.chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if h.content_length_invalid {
        Framing::Unknown
    } else {
        match h.content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    ResponseKind::Final(framing)
}
