//! Token counts from JSON text fed in pieces (no I/O).
//!
//! A byte scan, not a JSON parse: it works on text cut short by the capture and on pieces that
//! begin anywhere (the tail of a body). It looks for a quoted key of `KEYS` followed by optional
//! white space, `:`, optional white space and digits; the last value seen for a count wins
//! (Anthropic's `message_delta` repeats `output_tokens` with the final figure).
//!
//! The keys of the formats we read: OpenAI (`prompt_tokens`, `completion_tokens`), OpenAI
//! Responses and Anthropic (`input_tokens`, `output_tokens`), Ollama (`prompt_eval_count`,
//! `eval_count`), llama.cpp's own API (`tokens_evaluated`, `tokens_predicted`), TGI
//! (`generated_tokens`). No key is a prefix of another, so a key ends where its quote does.

use memchr::memchr;

/// Which count a usage key gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Prompt,
    Completion,
}

const KEYS: [(&[u8], Count); 9] = [
    (b"prompt_tokens", Count::Prompt),
    (b"completion_tokens", Count::Completion),
    (b"input_tokens", Count::Prompt),
    (b"output_tokens", Count::Completion),
    (b"prompt_eval_count", Count::Prompt),
    (b"eval_count", Count::Completion),
    (b"tokens_evaluated", Count::Prompt),
    (b"tokens_predicted", Count::Completion),
    (b"generated_tokens", Count::Completion),
];

/// Keys still matching, one bit per entry of `KEYS`.
type KeySet = u16;

/// Keys whose first `pos` bytes are followed by `b`.
fn narrow(set: KeySet, pos: usize, b: u8) -> KeySet {
    let mut out = 0;
    for (k, (key, _)) in KEYS.iter().enumerate() {
        if set & (1 << k) != 0 && key.get(pos) == Some(&b) {
            out |= 1 << k;
        }
    }
    out
}

/// The key of `set` that is exactly `len` bytes long.
fn complete(set: KeySet, len: usize) -> Option<u8> {
    (0..KEYS.len()).find_map(|k| (set & (1 << k) != 0 && KEYS[k].0.len() == len).then_some(k as u8))
}

const ALL_KEYS: KeySet = (1 << KEYS.len()) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Looking for an (unescaped) `"`.
    #[default]
    Idle,
    /// `pos` bytes of the keys in `set` matched after a `"`.
    Key {
        set: KeySet,
        pos: u8,
    },
    /// Key `k` matched with its closing `"`; expecting `:`.
    Colon {
        k: u8,
    },
    /// Expecting the first digit.
    Value {
        k: u8,
    },
    Digits {
        k: u8,
        value: u64,
    },
}

/// Finds usage token counts in JSON text fed in pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageScanner {
    phase: Phase,
    /// Last byte of the previous piece (to tell an escaped `\"`).
    last: u8,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl UsageScanner {
    /// Scans the next piece of text.
    pub fn feed(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            if self.phase == Phase::Idle {
                let Some(p) = memchr(b'"', &data[i..]) else {
                    break;
                };
                let at = i + p;
                let prev = if at > 0 { data[at - 1] } else { self.last };
                i = at + 1;
                if prev != b'\\' {
                    self.phase = Phase::Key {
                        set: ALL_KEYS,
                        pos: 0,
                    };
                }
                continue;
            }
            self.step(data[i]);
            i += 1;
        }
        if let Some(&b) = data.last() {
            self.last = b;
        }
    }

    /// Bytes were lost: whatever was being matched is abandoned.
    pub fn gap(&mut self) {
        self.phase = Phase::Idle;
        self.last = 0;
    }

    /// The text ended (end of an event): a number being read is complete.
    pub fn end(&mut self) {
        if let Phase::Digits { k, value } = self.phase {
            self.commit(k, value);
        }
        self.phase = Phase::Idle;
        self.last = 0;
    }

    fn commit(&mut self, k: u8, value: u64) {
        match KEYS[usize::from(k)].1 {
            Count::Prompt => self.prompt_tokens = Some(value),
            Count::Completion => self.completion_tokens = Some(value),
        }
    }

    /// After a byte that ended a match: a `"` may open the next key.
    fn restart(b: u8) -> Phase {
        if b == b'"' {
            Phase::Key {
                set: ALL_KEYS,
                pos: 0,
            }
        } else {
            Phase::Idle
        }
    }

    fn step(&mut self, b: u8) {
        self.phase = match self.phase {
            Phase::Idle => Self::restart(b),
            Phase::Key { set, pos } => {
                let pos = usize::from(pos);
                if b == b'"' {
                    match complete(set, pos) {
                        Some(k) => Phase::Colon { k },
                        // A closing quote of something else may open the next string.
                        None => Self::restart(b),
                    }
                } else {
                    match narrow(set, pos, b) {
                        0 => Phase::Idle,
                        set => Phase::Key {
                            set,
                            pos: (pos + 1) as u8,
                        },
                    }
                }
            }
            Phase::Colon { k } => match b {
                b':' => Phase::Value { k },
                _ if is_ws(b) => Phase::Colon { k },
                _ => Self::restart(b),
            },
            Phase::Value { k } => match b {
                b'0'..=b'9' => Phase::Digits {
                    k,
                    value: u64::from(b - b'0'),
                },
                _ if is_ws(b) => Phase::Value { k },
                _ => Self::restart(b),
            },
            Phase::Digits { k, value } => match b {
                b'0'..=b'9' => Phase::Digits {
                    k,
                    value: value.saturating_mul(10).saturating_add(u64::from(b - b'0')),
                },
                _ => {
                    self.commit(k, value);
                    Self::restart(b)
                }
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(text: &[u8]) -> (Option<u64>, Option<u64>) {
        let mut u = UsageScanner::default();
        u.feed(text);
        u.end();
        (u.prompt_tokens, u.completion_tokens)
    }

    #[test]
    fn usage_keys() {
        assert_eq!(
            usage(br#"{"usage":{"prompt_tokens":12,"completion_tokens": 345,"total_tokens":357}}"#),
            (Some(12), Some(345))
        );
        assert_eq!(
            usage(br#"{"usage": {"input_tokens" : 7 , "output_tokens":	9}}"#),
            (Some(7), Some(9))
        );
        // Ollama's final object, llama.cpp's own API, TGI's details.
        assert_eq!(
            usage(br#"{"done":true,"prompt_eval_count":26,"eval_count":290}"#),
            (Some(26), Some(290))
        );
        assert_eq!(
            usage(br#"{"stop":true,"tokens_predicted":17,"tokens_evaluated":5}"#),
            (Some(5), Some(17))
        );
        assert_eq!(
            usage(br#"{"details":{"finish_reason":"length","generated_tokens":20}}"#),
            (None, Some(20))
        );
        // Similar keys and escaped quotes do not match; null is no value.
        assert_eq!(
            usage(br#"{"completion_tokens_details":{"x":1},"prompt_tokens":null}"#),
            (None, None)
        );
        assert_eq!(
            usage(br#"{"text":"say \"prompt_tokens\": 5"}"#),
            (None, None)
        );
        // Truncated text still yields what was complete, and a number cut by the end counts.
        assert_eq!(
            usage(br#"{"prompt_tokens":5,"completion_tok"#),
            (Some(5), None)
        );
        assert_eq!(usage(br#"{"prompt_tokens":51"#), (Some(51), None));
        // Huge numbers saturate.
        assert_eq!(
            usage(br#"{"prompt_tokens":99999999999999999999999999}"#),
            (Some(u64::MAX), None)
        );
    }

    #[test]
    fn a_tail_that_starts_inside_a_string() {
        // The tail of a body begins anywhere: a closing quote is not mistaken for an opening
        // one for long.
        assert_eq!(
            usage(br#"ello world"}}],"usage":{"prompt_tokens":9,"completion_tokens":12}}"#),
            (Some(9), Some(12))
        );
        assert_eq!(
            usage(br#"_count":3,"eval_count":4}"#),
            (None, Some(4)),
            "a key cut at the start is not read"
        );
    }

    #[test]
    fn usage_split_anywhere() {
        let text =
            br#"{"usage":{"prompt_tokens":12,"completion_tokens":345},"prompt_eval_count":7}"#;
        for split in 0..text.len() {
            let mut u = UsageScanner::default();
            u.feed(&text[..split]);
            u.feed(&text[split..]);
            u.end();
            assert_eq!(
                (u.prompt_tokens, u.completion_tokens),
                (Some(7), Some(345)),
                "split {split}"
            );
        }
    }
}
