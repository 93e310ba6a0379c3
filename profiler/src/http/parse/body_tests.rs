//! Unit tests of body consumption (`body.rs`; no I/O).

use super::*;

fn collect(body: &mut Body, seen: &[u8], unseen: u64) -> (Fed, Vec<u8>, u64) {
    let mut data = Vec::new();
    let mut hidden = 0;
    let fed = body.feed(seen, unseen, 64, &mut |p| match p {
        Piece::Seen(s) => data.extend_from_slice(s),
        Piece::Unseen(n) => hidden += n,
    });
    (fed, data, hidden)
}

#[test]
fn chunked_split_everywhere() {
    let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    for split in 0..wire.len() {
        let mut body = Body::chunked();
        let (a, mut data, _) = collect(&mut body, &wire[..split], 0);
        assert!(!a.done && a.lost.is_none() && a.seen == split);
        let (b, more, _) = collect(&mut body, &wire[split..], 0);
        data.extend(more);
        assert!(b.done, "split {split}");
        assert_eq!(b.seen, wire.len() - split);
        assert_eq!(data, b"hello world");
    }
}

#[test]
fn chunked_unseen() {
    // Unseen bytes inside a chunk's data are consumed.
    let mut body = Body::chunked();
    let (f, data, hidden) = collect(&mut body, b"a\r\nhel", 7);
    assert_eq!((f.seen, f.unseen, f.lost), (6, 7, None));
    assert_eq!((data.as_slice(), hidden), (&b"hel"[..], 7));
    // A size line in unseen bytes loses the framing.
    let (f, _, _) = collect(&mut body, b"\r\n", 5);
    assert_eq!(f.lost, Some(Lost::Unseen));
    let mut body = Body::chunked();
    let (f, _, _) = collect(&mut body, b"2\r\nab", 10);
    assert_eq!(f.lost, Some(Lost::Unseen));
    let mut body = Body::chunked();
    let (f, _, _) = collect(&mut body, b"4\r\nab", 5);
    assert_eq!((f.unseen, f.lost), (2, Some(Lost::Unseen)));
    // Up to 2 unseen bytes right after the data are the chunk's CRLF.
    for (seen, unseen) in [(&b"4\r\nab"[..], 4), (b"4\r\nabcd", 2), (b"4\r\nabcd\r", 1)] {
        let mut body = Body::chunked();
        let (f, _, _) = collect(&mut body, seen, unseen);
        assert_eq!((f.unseen, f.lost), (unseen, None));
        let (f, _, _) = collect(&mut body, b"0\r\n\r\n", 0);
        assert!(f.done);
    }
    let mut body = Body::chunked();
    collect(&mut body, b"4\r\nabc", 2);
    let (f, _, _) = collect(&mut body, b"\n0\r\n\r\n", 0);
    assert!(f.done);
    // Huge sizes do not overflow.
    let mut body = Body::chunked();
    let (f, _, _) = collect(&mut body, b"fffffffffffffffff\r\n", 0);
    assert_eq!(f.lost, Some(Lost::Invalid));
    let mut body = Body::chunked();
    let (f, _, _) = collect(&mut body, b"zz\r\n", 0);
    assert_eq!(f.lost, Some(Lost::Invalid));
}

#[test]
fn length_body() {
    let mut body = Body::Length(10);
    let (f, _, hidden) = collect(&mut body, b"abc", 100);
    assert_eq!((f.seen, f.unseen, f.done, hidden), (3, 7, true, 7));
    let mut body = Body::Length(2);
    let (f, _, _) = collect(&mut body, b"abcd", 100);
    assert_eq!((f.seen, f.unseen, f.done), (2, 0, true));
}
