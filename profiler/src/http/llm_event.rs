//! Whether one event of an LLM stream carries output tokens, from its JSON text (no I/O).
//!
//! An SSE event's data or an NDJSON line of the streaming APIs we know, cut short or not:
//! OpenAI chat.completions (`choices[].delta.content`, `tool_calls`, `reasoning_content` /
//! `reasoning`) and completions (`choices[].text`), the OpenAI Responses API (`type`
//! `response.*.delta` with a `delta` string), Anthropic messages (`content_block_delta` with
//! `text`, `partial_json` or `thinking`), TGI `/generate_stream` (`token`), llama.cpp
//! `/completion` (`content`), Ollama `/api/generate` (`response`) and `/api/chat`
//! (`message.content`, `thinking`).
//!
//! An event **carries tokens** when one of those fields holds a non-empty string (a `token`
//! object, a non-empty `tool_calls` array). An event is a **control event** when it only has
//! evidence of carrying none: a role-only first chunk, an empty content string, a usage-only
//! chunk (`"choices":[]`), a finish chunk, Ollama's `"done":true` object, llama.cpp's
//! `"stop":true` one, and every lifecycle event of the Responses API and Anthropic (their first
//! `type` says so, whatever text they repeat: `response.completed` holds the whole answer).
//! Data that shows neither (plain text, another JSON shape, an event cut before its fields)
//! counts as carrying tokens: every event of an unknown stream is one step of it.
//!
//! An event also says whether it **ends the stream** (`is_final`): Ollama's `"done":true`,
//! llama.cpp's `"stop":true`, Anthropic's `message_stop`, the Responses API's
//! `response.completed`; OpenAI's `data: [DONE]` is told by `sse` (it is not JSON). A client may
//! close the connection right after it, before the server's last chunk: the exchange is whole.
//!
//! A byte scan, not a JSON parse: keys are matched wherever they sit, nesting is not followed.

use memchr::memchr;

/// Fields whose non-empty string value is generated text.
const TEXT_KEYS: [&[u8]; 10] = [
    b"content",
    b"text",
    b"delta",
    b"reasoning_content",
    b"reasoning",
    b"thinking",
    b"partial_json",
    b"response",
    b"arguments",
    b"refusal",
];

/// Anthropic event types that carry no tokens (`content_block_delta` is decided by its delta).
const ANTHROPIC_CONTROL: [&[u8]; 7] = [
    b"message_start",
    b"message_delta",
    b"message_stop",
    b"content_block_start",
    b"content_block_stop",
    b"ping",
    b"error",
];

/// What the fields of one event say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// Generated text (or a tool call, a TGI token) in it.
    Tokens,
    /// Only evidence of carrying none.
    Control,
    /// Neither: counted as carrying tokens.
    Unknown,
}

impl EventClass {
    pub fn carries_tokens(self) -> bool {
        self != EventClass::Control
    }
}

/// A JSON value's start, as far as this scan cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    /// A string: its raw bytes up to the closing quote or the end of the data (escapes kept).
    Str {
        raw: &'a [u8],
        closed: bool,
    },
    /// `[` followed by `]` (white space aside).
    EmptyArray,
    /// `[` followed by something else.
    Array,
    Object,
    True,
    /// Anything else (numbers, `false`, `null`) or nothing (cut).
    Other,
}

/// Index of the unescaped `"` closing a string whose body starts at `from`.
fn string_end(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = memchr(b'"', &data[i..]) {
        let at = i + p;
        let backslashes = data[from..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

fn skip_ws(data: &[u8], mut i: usize) -> usize {
    while matches!(data.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

fn value_at(data: &[u8], i: usize) -> Value<'_> {
    match data.get(i) {
        Some(b'"') => match string_end(data, i + 1) {
            Some(end) => Value::Str {
                raw: &data[i + 1..end],
                closed: true,
            },
            None => Value::Str {
                raw: &data[i + 1..],
                closed: false,
            },
        },
        Some(b'[') => match data.get(skip_ws(data, i + 1)) {
            Some(b']') => Value::EmptyArray,
            _ => Value::Array,
        },
        Some(b'{') => Value::Object,
        Some(b't') => Value::True,
        _ => Value::Other,
    }
}

/// Tallies the evidence of one event's fields.
#[derive(Debug, Default)]
struct Evidence {
    tokens: bool,
    control: bool,
    /// The first `type` field decided the event.
    decided: Option<EventClass>,
    type_seen: bool,
    is_final: bool,
}

impl Evidence {
    fn field(&mut self, key: &[u8], value: Value<'_>) {
        match (key, value) {
            (b"type", Value::Str { raw, closed }) if !self.type_seen => {
                self.type_seen = true;
                self.decided = decide_by_type(raw, closed);
                self.is_final = closed && (raw == b"message_stop" || raw == b"response.completed");
            }
            (k, Value::Str { raw, closed }) if TEXT_KEYS.contains(&k) => {
                // A string cut by the capture right after its quote is taken as non-empty.
                if raw.is_empty() && closed {
                    self.control = true;
                } else {
                    self.tokens = true;
                }
            }
            (b"token", Value::Object) => self.tokens = true,
            (b"tool_calls", Value::Array) => self.tokens = true,
            (b"tool_calls" | b"choices", Value::EmptyArray)
            | (b"role" | b"finish_reason" | b"stop_reason", Value::Str { .. })
            | (b"usage", Value::Object) => self.control = true,
            (b"done" | b"stop", Value::True) => {
                self.control = true;
                self.is_final = true;
            }
            _ => {}
        }
    }

    fn class(&self) -> EventClass {
        if let Some(c) = self.decided {
            c
        } else if self.tokens {
            EventClass::Tokens
        } else if self.control {
            EventClass::Control
        } else {
            EventClass::Unknown
        }
    }
}

/// The Responses API's and Anthropic's event types decide by themselves (their lifecycle events
/// repeat the whole text); other types (OpenAI's tool-call `function`, …) say nothing.
fn decide_by_type(raw: &[u8], closed: bool) -> Option<EventClass> {
    if !closed {
        return None;
    }
    if raw.starts_with(b"response.") {
        return Some(if raw.ends_with(b".delta") {
            EventClass::Tokens
        } else {
            EventClass::Control
        });
    }
    ANTHROPIC_CONTROL
        .contains(&raw)
        .then_some(EventClass::Control)
}

/// What one event's data says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventInfo {
    pub class: EventClass,
    /// The event ends the stream.
    pub is_final: bool,
}

/// Classifies one event's data (the JSON text, possibly cut short).
pub fn classify(data: &[u8]) -> EventClass {
    inspect(data).class
}

/// Classifies one event's data and tells whether it ends the stream.
pub fn inspect(data: &[u8]) -> EventInfo {
    let mut ev = Evidence::default();
    let mut i = 0;
    while let Some(p) = memchr(b'"', &data[i..]) {
        let open = i + p;
        let Some(close) = string_end(data, open + 1) else {
            break;
        };
        let after = skip_ws(data, close + 1);
        if data.get(after) != Some(&b':') {
            // A string value (or an array element): go on after it.
            i = close + 1;
            continue;
        }
        let key = &data[open + 1..close];
        let at = skip_ws(data, after + 1);
        let value = value_at(data, at);
        ev.field(key, value);
        i = match value {
            // Skip the whole string value: its text may quote keys.
            Value::Str { raw, closed: true } => at + 1 + raw.len() + 1,
            Value::Str { closed: false, .. } => break,
            _ => at,
        };
    }
    EventInfo {
        class: ev.class(),
        is_final: ev.is_final,
    }
}

#[cfg(test)]
mod tests {
    use super::EventClass::{Control, Tokens, Unknown};
    use super::*;

    fn class(s: &str) -> EventClass {
        classify(s.as_bytes())
    }

    #[test]
    fn openai_chat_chunks() {
        let role = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(class(role), Control);
        assert_eq!(
            class(r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#),
            Control
        );
        let token = r#"{"id":"c","choices":[{"index":0,"delta":{"content":" Hello","reasoning_content":null},"finish_reason":null}]}"#;
        assert_eq!(class(token), Tokens);
        // Role and first text in one chunk: text wins.
        assert_eq!(
            class(r#"{"choices":[{"delta":{"role":"assistant","content":"Hi"}}]}"#),
            Tokens
        );
        assert_eq!(
            class(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
            Control
        );
        let usage = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#;
        assert_eq!(class(usage), Control);
        // An escaped quote and a newline as the token.
        assert_eq!(class(r#"{"choices":[{"delta":{"content":"\""}}]}"#), Tokens);
        assert_eq!(class(r#"{"choices":[{"delta":{"content":"\n"}}]}"#), Tokens);
        // Text that quotes keys is not read as fields.
        assert_eq!(
            class(r#"{"choices":[{"delta":{"content":"\"role\":\"x\""}}]}"#),
            Tokens
        );
    }

    #[test]
    fn openai_tool_calls_reasoning_and_completions() {
        let first = r#"{"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#;
        assert_eq!(class(first), Tokens);
        let args = r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\""}}]}}]}"#;
        assert_eq!(class(args), Tokens);
        assert_eq!(
            class(r#"{"choices":[{"delta":{"tool_calls":[]},"finish_reason":"tool_calls"}]}"#),
            Control
        );
        assert_eq!(
            class(r#"{"choices":[{"delta":{"reasoning_content":"Let me think"}}]}"#),
            Tokens
        );
        assert_eq!(
            class(r#"{"choices":[{"delta":{"reasoning":"Hmm"}}]}"#),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":" foo","index":0,"logprobs":null,"finish_reason":null}]}"#
            ),
            Tokens
        );
        assert_eq!(
            class(r#"{"choices":[{"text":"","index":0,"finish_reason":"length"}]}"#),
            Control
        );
    }

    #[test]
    fn responses_api_events() {
        assert_eq!(
            class(
                r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","sequence_number":4}"#
            ),
            Tokens
        );
        assert_eq!(
            class(r#"{"type":"response.function_call_arguments.delta","delta":"{\"a"}"#),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"type":"response.created","response":{"id":"resp_1","output":[],"text":{"format":{"type":"text"}}}}"#
            ),
            Control
        );
        // Lifecycle events that repeat the text.
        assert_eq!(
            class(r#"{"type":"response.output_text.done","text":"Hello world"}"#),
            Control
        );
        assert_eq!(
            class(
                r#"{"type":"response.completed","response":{"output":[{"type":"message","content":[{"type":"output_text","text":"Hello world"}]}],"usage":{"input_tokens":5,"output_tokens":2}}}"#
            ),
            Control
        );
    }

    #[test]
    fn anthropic_events() {
        assert_eq!(
            class(
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":25,"output_tokens":1}}}"#
            ),
            Control
        );
        assert_eq!(
            class(
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
            ),
            Control
        );
        assert_eq!(
            class(
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#
            ),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"loc"}}"#
            ),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"So"}}"#
            ),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#
            ),
            Control
        );
        assert_eq!(class(r#"{"type":"ping"}"#), Control);
        assert_eq!(class(r#"{"type":"message_stop"}"#), Control);
    }

    #[test]
    fn tgi_llama_cpp_and_ollama() {
        assert_eq!(
            class(
                r#"{"index":1,"token":{"id":3,"text":" the","logprob":-1.2,"special":false},"generated_text":null,"details":null}"#
            ),
            Tokens
        );
        assert_eq!(
            class(r#"{"content":"Hello","stop":false,"id_slot":0,"index":0}"#),
            Tokens
        );
        assert_eq!(
            class(r#"{"content":"","stop":true,"tokens_predicted":17,"tokens_evaluated":5}"#),
            Control
        );
        assert_eq!(
            class(
                r#"{"model":"m","created_at":"2024-01-01T00:00:00Z","response":"The","done":false}"#
            ),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"model":"m","response":"","done":true,"done_reason":"stop","context":[1,2],"prompt_eval_count":26,"eval_count":290}"#
            ),
            Control
        );
        assert_eq!(
            class(r#"{"model":"m","message":{"role":"assistant","content":"The"},"done":false}"#),
            Tokens
        );
        assert_eq!(
            class(
                r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"Hmm"},"done":false}"#
            ),
            Tokens
        );
    }

    #[test]
    fn final_events() {
        let fin = |s: &str| inspect(s.as_bytes()).is_final;
        assert!(fin(
            r#"{"model":"m","response":"","done":true,"eval_count":3}"#
        ));
        assert!(!fin(r#"{"model":"m","response":"a","done":false}"#));
        assert!(fin(r#"{"content":"","stop":true,"tokens_predicted":17}"#));
        assert!(fin(r#"{"type":"message_stop"}"#));
        assert!(fin(
            r#"{"type":"response.completed","response":{"status":"completed"}}"#
        ));
        assert!(!fin(
            r#"{"type":"message_delta","usage":{"output_tokens":15}}"#
        ));
        assert!(!fin(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#));
    }

    #[test]
    fn unknown_and_cut_data() {
        assert_eq!(class("hello"), Unknown);
        assert_eq!(class(r#"{"progress":0.5}"#), Unknown);
        assert!(Unknown.carries_tokens());
        // Cut by the capture before any field, inside a key, right after a text's quote.
        assert_eq!(
            class(r#"{"id":"chatcmpl-123","object":"chat.comp"#),
            Unknown
        );
        assert_eq!(class(r#"{"choices":[{"delta":{"cont"#), Unknown);
        assert_eq!(class(r##"{"choices":[{"delta":{"content":""##), Tokens);
        assert_eq!(class(r#"{"choices":[{"delta":{"content":"Hel"#), Tokens);
        // Bytes that are not JSON never panic.
        for s in [
            "\"",
            "\":",
            "\"a\":",
            "\"a\":\"",
            "\\\"\"",
            "\"type\":\"response.x",
        ] {
            let _ = class(s);
        }
    }
}
