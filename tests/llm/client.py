"""Drives an OpenAI-compatible server with the official openai SDK and prints, per request,
one JSON line of what the client measured (the ground truth of tests/tests/llm.rs).

Usage: client.py BASE_URL ROUNDS MAX_TOKENS

Each round: one streamed chat completion, then the same request not streamed (greedy
decoding, so both produce the same tokens). Times are CLOCK_MONOTONIC ns (time.monotonic_ns),
taken right before the SDK call and as each chunk reaches this code.

Streamed line: kind "stream", sent_ns, first_event_ns (first chunk), first_token_ns / last_token_ns
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
        sent = time.monotonic_ns()
        first_event = first_token = last_token = None
        chunks = token_chunks = 0
        stream = client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=max_tokens, temperature=0, stream=True
        )
        for chunk in stream:
            now = time.monotonic_ns()
            chunks += 1
            if first_event is None:
                first_event = now
            if chunk.choices and chunk.choices[0].delta.content:
                token_chunks += 1
                if first_token is None:
                    first_token = now
                last_token = now
        print(json.dumps({
            "kind": "stream", "sent_ns": sent, "first_event_ns": first_event,
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
