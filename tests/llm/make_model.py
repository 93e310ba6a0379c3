"""Writes a tiny random-weight llama model in GGUF for the end-to-end LLM tests.

Usage: make_model.py OUT.gguf

Two layers, 64-wide, a 130-token SentencePiece-style vocabulary of printable ASCII pieces
(no byte-fallback tokens, so every generated token is whole text and a streaming server
sends one token per chunk). The output rows of the special tokens are zero, so greedy
decoding never picks end-of-sequence before `max_tokens`: a request yields exactly
`max_tokens` tokens. Deterministic (fixed seed).
"""

import sys

import numpy as np
from gguf import GGUFWriter, TokenType

N_EMBD, N_HEAD, N_LAYER, N_FF, N_CTX = 64, 4, 2, 128, 512

WORDS = (
    "the a an of to in is on for and or it be as at by with from that this are was "
    "model token stream time first fast slow good data server client request reply"
).split()


def vocab():
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    pieces = ["\u2581" + w for w in WORDS]
    pieces += [chr(c) for c in range(33, 127)]
    pieces.append("\u2581")
    seen = set()
    for p in pieces:
        if p not in seen:
            seen.add(p)
            tokens.append(p)
            types.append(TokenType.NORMAL)
    scores = [0.0] * 3 + [-float(i) for i in range(len(tokens) - 3)]
    return tokens, types, scores


def main(out):
    rng = np.random.default_rng(7)
    tokens, types, scores = vocab()
    n_vocab = len(tokens)
    w = GGUFWriter(out, "llama")
    w.add_name("profiler-test-tiny-random")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def rand(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    ones = np.ones(N_EMBD, dtype=np.float32)
    w.add_tensor("token_embd.weight", rand(n_vocab, N_EMBD))
    w.add_tensor("output_norm.weight", ones)
    output = rand(n_vocab, N_EMBD)
    output[:3] = 0.0  # <unk>, <s>, </s>: logit 0, below the best random one
    w.add_tensor("output.weight", output)
    for i in range(N_LAYER):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(b + name + ".weight", rand(N_EMBD, N_EMBD, scale=0.1))
        w.add_tensor(b + "ffn_norm.weight", ones)
        w.add_tensor(b + "ffn_gate.weight", rand(N_FF, N_EMBD, scale=0.1))
        w.add_tensor(b + "ffn_up.weight", rand(N_FF, N_EMBD, scale=0.1))
        w.add_tensor(b + "ffn_down.weight", rand(N_EMBD, N_FF, scale=0.1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
