//! Connection unit tests of the LLM streaming formats, as their servers write them (no I/O).
//!
//! Each stream is played through a connection once with one event per write and again with
//! every event cut into two chunks written apart (chunk boundaries and writes inside events):
//! the counts must not change; and each once more without its usage counts (tokens estimated
//! from events). Event `k` completes at `1_000 + 100·k` ns.

use super::test_support::*;
use super::*;

const POST: &str = "POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";

fn head(content_type: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n")
}

/// The figures a test checks, per play.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    events: u64,
    content_events: u64,
    output_tokens: Option<u64>,
    estimated: bool,
    prompt_tokens: Option<u64>,
    first_content_ns: Option<u64>,
    last_content_ns: Option<u64>,
    outcome: Outcome,
}

/// Plays `events` (the wire text of each event) after `content_type`'s head; with `cut`, each
/// event goes out as two chunks in two writes, cut `cut` bytes in (the second at the event's
/// time, the first 10 ns before it).
fn play(content_type: &str, events: &[String], cut: Option<usize>) -> Seen {
    let rec = play_record(content_type, events, cut);
    let s = rec.stream.clone().expect("a stream");
    Seen {
        events: s.events,
        content_events: s.content_events,
        output_tokens: rec.output_tokens(),
        estimated: rec.output_tokens_estimated(),
        prompt_tokens: rec.prompt_tokens(),
        first_content_ns: s.first_content_ns,
        last_content_ns: s.last_content_ns,
        outcome: rec.outcome,
    }
}

/// `play`'s exchange itself.
fn play_record(content_type: &str, events: &[String], cut: Option<usize>) -> RequestRecord {
    let mut t = T::new();
    t.r(100, POST);
    t.w(200, &head(content_type));
    for (k, ev) in events.iter().enumerate() {
        let ts = 1_000 + 100 * k as u64;
        match cut {
            Some(at) if at < ev.len() && ev.is_char_boundary(at) => {
                t.w(ts - 10, &chunk(&ev[..at]));
                t.w(ts, &chunk(&ev[at..]));
            }
            _ => {
                t.w(ts, &chunk(ev));
            }
        }
    }
    t.w(9_000, "0\r\n\r\n");
    t.one()
}

/// Usage keys of every format, and what they become in the same stream without usage.
const USAGE_KEYS: [(&str, &str); 9] = [
    ("\"prompt_tokens\"", "\"prompt_x\""),
    ("\"completion_tokens\"", "\"completion_x\""),
    ("\"input_tokens\"", "\"input_x\""),
    ("\"output_tokens\"", "\"output_x\""),
    ("\"prompt_eval_count\"", "\"prompt_eval_x\""),
    ("\"eval_count\"", "\"eval_x\""),
    ("\"tokens_predicted\"", "\"predicted_x\""),
    ("\"tokens_evaluated\"", "\"evaluated_x\""),
    ("\"generated_tokens\"", "\"generated_x\""),
];

/// Plays the stream whole and cut at several places; all plays must see the same. Then the
/// same stream with its usage counts renamed away: the same events, output tokens estimated
/// from the token-carrying events, no prompt tokens.
fn check(content_type: &str, events: &[String], want: Seen) {
    for cut in [None, Some(1), Some(7), Some(30), Some(90)] {
        assert_eq!(
            play(content_type, events, cut),
            want,
            "{content_type}, cut {cut:?}"
        );
    }
    let without: Vec<String> = events
        .iter()
        .map(|ev| {
            USAGE_KEYS
                .iter()
                .fold(ev.clone(), |ev, (key, other)| ev.replace(key, other))
        })
        .collect();
    let estimate = Seen {
        output_tokens: Some(want.content_events),
        estimated: true,
        prompt_tokens: None,
        ..want
    };
    for cut in [None, Some(7)] {
        assert_eq!(
            play(content_type, &without, cut),
            estimate,
            "{content_type} without usage, cut {cut:?}"
        );
    }
}

fn sse(data: &str) -> String {
    format!("data: {data}\n\n")
}

fn sse_named(event: &str, data: &str) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

fn ns(k: u64) -> Option<u64> {
    Some(1_000 + 100 * k)
}

fn openai_chat(tokens: &[&str], usage: bool) -> Vec<String> {
    let base =
        r#""id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000000,"model":"m""#;
    let mut v = vec![sse(&format!(
        r#"{{{base},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#
    ))];
    for t in tokens {
        v.push(sse(&format!(
            r#"{{{base},"choices":[{{"index":0,"delta":{{"content":"{t}"}},"logprobs":null,"finish_reason":null}}]}}"#
        )));
    }
    v.push(sse(&format!(
        r#"{{{base},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}"#
    )));
    if usage {
        v.push(sse(&format!(
            r#"{{{base},"choices":[],"usage":{{"prompt_tokens":12,"completion_tokens":{},"total_tokens":{}}}}}"#,
            tokens.len(),
            12 + tokens.len()
        )));
    }
    v.push(sse("[DONE]"));
    v
}

#[test]
fn openai_chat_with_and_without_usage() {
    let tokens = ["Hello", ",", " world", "!", " \\\"ok\\\""];
    check(
        "text/event-stream",
        &openai_chat(&tokens, true),
        Seen {
            events: 8,
            content_events: 5,
            output_tokens: Some(5),
            estimated: false,
            prompt_tokens: Some(12),
            first_content_ns: ns(1),
            last_content_ns: ns(5),
            outcome: Outcome::Complete,
        },
    );
    check(
        "text/event-stream; charset=utf-8",
        &openai_chat(&tokens, false),
        Seen {
            events: 7,
            content_events: 5,
            output_tokens: Some(5),
            estimated: true,
            prompt_tokens: None,
            first_content_ns: ns(1),
            last_content_ns: ns(5),
            outcome: Outcome::Complete,
        },
    );
}

/// Under load servers put several tokens in one chunk: the events undercount, the usage does
/// not, and TPOT divides by the tokens.
#[test]
fn openai_chat_merged_tokens() {
    let mut events = openai_chat(&["Hello world", " and", " more tokens"], false);
    let n = events.len();
    events.insert(
        n - 1,
        sse(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":7}}"#),
    );
    let seen = play("text/event-stream", &events, None);
    assert_eq!((seen.content_events, seen.output_tokens), (3, Some(7)));
    let rec = play_record("text/event-stream", &events, None);
    // First token event at 1 100, last at 1 300: 200 ns over 6 tokens after the first.
    assert_eq!(rec.tpot_ns(), Some(200.0 / 6.0));
}

#[test]
fn openai_tool_calls() {
    let base = r#""id":"c","object":"chat.completion.chunk","model":"m""#;
    let events = vec![
        sse(&format!(
            r#"{{{base},"choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_1","type":"function","function":{{"name":"get_weather","arguments":""}}}}]}},"finish_reason":null}}]}}"#
        )),
        sse(&format!(
            r#"{{{base},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{\"city\":"}}}}]}},"finish_reason":null}}]}}"#
        )),
        sse(&format!(
            r#"{{{base},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"\"Paris\"}}"}}}}]}},"finish_reason":null}}]}}"#
        )),
        sse(&format!(
            r#"{{{base},"choices":[{{"index":0,"delta":{{}},"finish_reason":"tool_calls"}}]}}"#
        )),
        sse("[DONE]"),
    ];
    check(
        "text/event-stream",
        &events,
        Seen {
            events: 4,
            content_events: 3,
            output_tokens: Some(3),
            estimated: true,
            prompt_tokens: None,
            first_content_ns: ns(0),
            last_content_ns: ns(2),
            outcome: Outcome::Complete,
        },
    );
}

#[test]
fn openai_completions() {
    let mut events: Vec<String> = ["Once", " upon", " a", " time"]
        .iter()
        .map(|t| {
            sse(&format!(
                r#"{{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{{"text":"{t}","index":0,"logprobs":null,"finish_reason":null}}]}}"#
            ))
        })
        .collect();
    events.push(sse(
        r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
    ));
    events.push(sse("[DONE]"));
    check(
        "text/event-stream",
        &events,
        Seen {
            events: 5,
            content_events: 4,
            output_tokens: Some(4),
            estimated: false,
            prompt_tokens: Some(3),
            first_content_ns: ns(0),
            last_content_ns: ns(3),
            outcome: Outcome::Complete,
        },
    );
}

#[test]
fn openai_responses_api() {
    let mut events = vec![
        sse_named(
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"text":{"format":{"type":"text"}},"usage":null}}"#,
        ),
        sse_named(
            "response.output_item.added",
            r#"{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#,
        ),
        sse_named(
            "response.content_part.added",
            r#"{"type":"response.content_part.added","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"text":""}}"#,
        ),
    ];
    for (i, t) in ["Hi", " there", "!"].iter().enumerate() {
        events.push(sse_named(
            "response.output_text.delta",
            &format!(
                r#"{{"type":"response.output_text.delta","sequence_number":{},"item_id":"msg_1","output_index":0,"content_index":0,"delta":"{t}"}}"#,
                3 + i
            ),
        ));
    }
    events.push(sse_named(
        "response.output_text.done",
        r#"{"type":"response.output_text.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi there!"}"#,
    ));
    events.push(sse_named(
        "response.completed",
        r#"{"type":"response.completed","sequence_number":7,"response":{"id":"resp_1","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi there!"}]}],"usage":{"input_tokens":9,"output_tokens":3,"total_tokens":12}}}"#,
    ));
    check(
        "text/event-stream",
        &events,
        Seen {
            events: 8,
            content_events: 3,
            output_tokens: Some(3),
            estimated: false,
            prompt_tokens: Some(9),
            first_content_ns: ns(3),
            last_content_ns: ns(5),
            outcome: Outcome::Complete,
        },
    );
}

#[test]
fn anthropic_messages() {
    let mut events = vec![
        sse_named(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ),
        sse_named(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        sse_named("ping", r#"{"type": "ping"}"#),
    ];
    for t in ["Hello", "!", " How"] {
        events.push(sse_named(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{t}"}}}}"#
            ),
        ));
    }
    events.push(sse_named(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    events.push(sse_named(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}"#,
    ));
    events.push(sse_named("message_stop", r#"{"type":"message_stop"}"#));
    check(
        "text/event-stream; charset=utf-8",
        &events,
        Seen {
            events: 9,
            content_events: 3,
            output_tokens: Some(3),
            estimated: false,
            prompt_tokens: Some(25),
            first_content_ns: ns(3),
            last_content_ns: ns(5),
            outcome: Outcome::Complete,
        },
    );
}

#[test]
fn tgi_generate_stream() {
    let mut events: Vec<String> = [(1, " The"), (2, " sky"), (3, " is")]
        .iter()
        .map(|(i, t)| {
            sse(&format!(
                r#"{{"index":{i},"token":{{"id":{i}00,"text":"{t}","logprob":-0.5,"special":false}},"generated_text":null,"details":null}}"#
            ))
        })
        .collect();
    events.push(sse(
        r#"{"index":4,"token":{"id":2,"text":"</s>","logprob":-0.1,"special":true},"generated_text":"The sky is","details":{"finish_reason":"eos_token","generated_tokens":4,"seed":null}}"#,
    ));
    check(
        "text/event-stream",
        &events,
        Seen {
            events: 4,
            content_events: 4,
            output_tokens: Some(4),
            estimated: false,
            prompt_tokens: None,
            first_content_ns: ns(0),
            last_content_ns: ns(3),
            outcome: Outcome::Complete,
        },
    );
}

#[test]
fn llama_cpp_completion() {
    let mut events: Vec<String> = ["Hi", " there", "!"]
        .iter()
        .map(|t| {
            sse(&format!(
                r#"{{"index":0,"content":"{t}","tokens":[],"stop":false,"id_slot":0}}"#
            ))
        })
        .collect();
    events.push(sse(
        r#"{"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"model":"m","tokens_predicted":3,"tokens_evaluated":7,"generation_settings":{"n_predict":-1,"temperature":0.8},"prompt":"Say hi","stop_type":"eos","timings":{"prompt_n":7,"predicted_n":3}}"#,
    ));
    check(
        "text/event-stream",
        &events,
        Seen {
            events: 4,
            content_events: 3,
            output_tokens: Some(3),
            estimated: false,
            prompt_tokens: Some(7),
            first_content_ns: ns(0),
            last_content_ns: ns(2),
            outcome: Outcome::Complete,
        },
    );
}

#[test]
fn ollama_ndjson_generate_and_chat() {
    let mut generate: Vec<String> = ["The", " sky", " is"]
        .iter()
        .map(|t| {
            format!(
                "{{\"model\":\"llama3\",\"created_at\":\"2024-05-01T00:00:00Z\",\"response\":\"{t}\",\"done\":false}}\n"
            )
        })
        .collect();
    generate.push(
        "{\"model\":\"llama3\",\"created_at\":\"2024-05-01T00:00:01Z\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\",\"context\":[1,2,3],\"total_duration\":1000,\"prompt_eval_count\":26,\"prompt_eval_duration\":10,\"eval_count\":3,\"eval_duration\":20}\n".into(),
    );
    let want = Seen {
        events: 4,
        content_events: 3,
        output_tokens: Some(3),
        estimated: false,
        prompt_tokens: Some(26),
        first_content_ns: ns(0),
        last_content_ns: ns(2),
        outcome: Outcome::Complete,
    };
    check("application/x-ndjson", &generate, want);
    let chat: Vec<String> = ["The", " sky"]
        .iter()
        .map(|t| {
            format!(
                "{{\"model\":\"llama3\",\"message\":{{\"role\":\"assistant\",\"content\":\"{t}\"}},\"done\":false}}\n"
            )
        })
        .chain(std::iter::once(
            "{\"model\":\"llama3\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true}\n".to_string(),
        ))
        .collect();
    check(
        "application/x-ndjson",
        &chat,
        Seen {
            events: 3,
            content_events: 2,
            output_tokens: Some(2),
            estimated: true,
            prompt_tokens: None,
            first_content_ns: ns(0),
            last_content_ns: ns(1),
            outcome: Outcome::Complete,
        },
    );
}

/// Non-streamed JSON: usage at the end of a long body, only the body's last bytes captured
/// (the kernel's tail capture): tokens exact.
#[test]
fn json_body_usage_in_the_tail() {
    let body = format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"finish_reason":"length"}}],"usage":{{"prompt_tokens":56,"completion_tokens":64,"total_tokens":120}}}}"#,
        "word ".repeat(400)
    );
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut t = T::new();
    t.r(100, POST);
    // 512 leading bytes, the middle unseen, the last 512 bytes as a segment of their own.
    let (lead, tail) = (&resp[..512], &resp[resp.len() - 512..]);
    t.w_cut(200, lead, (resp.len() - 512) as u64);
    t.w(200, tail);
    let rec = t.one();
    assert_eq!(rec.outcome, Outcome::Complete);
    assert_eq!(
        (rec.prompt_tokens(), rec.output_tokens()),
        (Some(56), Some(64))
    );
    assert!(!rec.output_tokens_estimated());
}
