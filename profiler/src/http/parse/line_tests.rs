//! Unit tests of start-line recognition (`line.rs`; no I/O).

use super::*;

#[test]
fn request_lines() {
    let m = |s: &str| Method::new(s.as_bytes());
    assert_eq!(
        classify_request_line(b"GET / HTTP/1.1\r\n"),
        LineClass::Request {
            method: m("GET"),
            line_end: 16
        }
    );
    assert_eq!(
        classify_request_line(b"M-SEARCH * HTTP/1.0\nx"),
        LineClass::Request {
            method: m("M-SEARCH"),
            line_end: 20
        }
    );
    assert_eq!(
        classify_request_line(b"GE"),
        LineClass::NeedMore { method: None }
    );
    assert_eq!(
        classify_request_line(b"GET /x HTTP/1"),
        LineClass::NeedMore {
            method: Some(m("GET"))
        }
    );
    assert_eq!(
        classify_request_line(b"PRI * HTTP/2.0\r\n"),
        LineClass::Invalid
    );
    assert_eq!(classify_request_line(b"\x16\x03\x01"), LineClass::Invalid);
    assert_eq!(classify_request_line(b"get / HTTP/1.1"), LineClass::Invalid);
    assert_eq!(classify_request_line(b"GET  HTTP/1.1"), LineClass::Invalid);
    assert_eq!(
        Method::new(b"AVERYLONGMETHODNAME").to_report_string(),
        "OTHER"
    );
}

#[test]
fn status_lines() {
    assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
    assert_eq!(parse_status_line(b"HTTP/1.0 404\r\n"), Some(404));
    assert_eq!(parse_status_line(b"HTTP/1.1 200\n"), Some(200));
    assert_eq!(parse_status_line(b"HTTP/1.1 20 OK\r\n"), None);
    assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), None);
    assert_eq!(parse_status_line(b"HTTP/2 200\r\n"), None);
}
