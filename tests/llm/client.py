"""Drives an OpenAI-compatible server with the official openai SDK and prints, per request,
one JSON line of what the client measured (the ground truth of tests/tests/llm.rs).

Usage: client.py BASE_URL ROUNDS MAX_TOKENS

Each round: one streamed chat completion, then the same request not streamed (greedy
decoding, so both produce the same tokens). Times are CLOCK_MONOTONIC ns (time.monotonic_ns),
taken right before the SDK call and as each SSE line of the stream reaches this code.

Streamed line: kind "stream", sent_ns (and sent_unix_ns: the same moment in Unix time),
ready_ns (the response head returned by the SDK, before it reads the body), first_event_ns (first chunk), first_token_ns / last_token_ns
(first and last chunk with non-empty delta content), chunks (all chunks), token_chunks.
Non-streamed line: kind "full", sent_ns, done_ns, prompt_tokens, completion_tokens (the
server's usage).
"""

import json
import sys
import time

from openai import OpenAI


def main(base_url, rounds, max_tokens):
    client = OpenAI(base_url=base_url, api_key="test", max_retries=0)
    for i in range(rounds):
        messages = [{"role": "user", "content": f"Say something about streams, round {i}."}]
        sent, sent_unix = time.monotonic_ns(), time.time_ns()
        first_event = first_token = last_token = None
        chunks = token_chunks = 0
        # The SDK's raw stream, each SSE line timed as it arrives: building a typed chunk per
        # event costs the client more than this server takes per token (the first one several
        # ms), which would shift the client's times by its own work.
        with client.chat.completions.with_streaming_response.create(
            model="tiny", messages=messages, max_tokens=max_tokens, temperature=0, stream=True
        ) as response:
            # The head is in; whatever the SDK does before it reads the body delays what it
            # sees of events written meanwhile.
            ready = time.monotonic_ns()
            for line in response.iter_lines():
                now = time.monotonic_ns()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                chunks += 1
                if first_event is None:
                    first_event = now
                choices = json.loads(data).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    token_chunks += 1
                    if first_token is None:
                        first_token = now
                    last_token = now
        print(json.dumps({
            "kind": "stream", "sent_ns": sent, "sent_unix_ns": sent_unix, "ready_ns": ready,
            "first_event_ns": first_event,
            "first_token_ns": first_token, "last_token_ns": last_token,
            "chunks": chunks, "token_chunks": token_chunks,
        }), flush=True)
        sent = time.monotonic_ns()
        full = client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=max_tokens, temperature=0
        )
        print(json.dumps({
            "kind": "full", "sent_ns": sent, "done_ns": time.monotonic_ns(),
            "prompt_tokens": full.usage.prompt_tokens,
            "completion_tokens": full.usage.completion_tokens,
        }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
