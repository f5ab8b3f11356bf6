"""Writes a tiny llama-architecture GGUF model with seeded random weights, for tests against a
real llama.cpp server without downloading a model.

    python scripts/tiny_gguf.py OUT.gguf

Vocabulary: <unk>, <s>, </s>, the 256 byte tokens, printable ASCII, "▁", and a few hundred
English words with all their prefixes (so SentencePiece-style merges reach them). A ChatML chat
template. The model never emits a control, unknown or byte token: every token embedding
carries a constant on one residual dimension that no layer reads or writes, and the output
head maps that dimension to a large negative logit for those tokens. So every request yields
exactly `max_tokens` tokens of varied nonsense, without relying on `ignore_eos`.
"""

import sys

import numpy as np
import gguf

N_EMBD, N_LAYER, N_HEAD, N_FF, N_CTX = 256, 4, 4, 704, 16384
HEAD_DIM = N_EMBD // N_HEAD
RESERVED = N_EMBD - 1  # the residual dimension nobody reads or writes

WORDS = """the of and to in is was for on that with as by at from it be this are or an have
not but they which one you had were all we there their been has more when who will would
time can said about what some other into could them than then these two may first any like
now my over such our man me even most made after also did many before must through back
years where much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against
go came right used take three states himself few house use during without again place around
however home small found thought went say part once general high upon school every does got
united left number course war until always away something fact though water less public put
think almost hand enough far took head yet government system better set told nothing night
end why called didn find going look asked later point knew city next program business give
group toward young days let room president side social given present several order national
possible rather second face per among form important often things looked early white case
john become large big need four within felt along children saw best church ever least power
development light thing seemed family interest want members mind country area others done
turned although open god service certain kind problem began different door thus help sense
means whole matter perhaps itself york times law human line above name example action company
hands local show whether five history gave today either act feet across taken past quite
anything seen having death experience body word half really field""".split()

TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vocab():
    toks, scores, types = [], [], []
    T = gguf.TokenType

    def add(t, score, ty):
        toks.append(t)
        scores.append(score)
        types.append(ty)

    add("<unk>", 0.0, T.UNKNOWN)
    add("<s>", 0.0, T.CONTROL)
    add("</s>", 0.0, T.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, T.BYTE)
    seen = set(toks)
    for c in ["▁"] + [chr(i) for i in range(33, 127)]:
        if c not in seen:
            seen.add(c)
            add(c, -10.0, T.NORMAL)
    for w in WORDS:
        piece = "▁" + w
        for n in range(2, len(piece) + 1):
            p = piece[:n]
            if p not in seen:
                seen.add(p)
                add(p, -10.0 + n, T.NORMAL)
    return toks, scores, types


def main(path):
    rng = np.random.default_rng(20261125)
    toks, scores, types = vocab()
    n_vocab = len(toks)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("llm-inf-bench tiny random")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(TEMPLATE)

    def rand(*shape, scale=0.08):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    emb = rand(n_vocab, N_EMBD, scale=0.5)
    emb[:, RESERVED] = 8.0
    w.add_tensor("token_embd.weight", emb)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            m = rand(N_EMBD, N_EMBD)
            m[:, RESERVED] = 0.0  # reads nothing of the reserved dimension
            w.add_tensor(p + name + ".weight", m)
        o = rand(N_EMBD, N_EMBD)
        o[RESERVED, :] = 0.0  # writes nothing to it
        w.add_tensor(p + "attn_output.weight", o)
        w.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, np.float32))
        for name in ("ffn_gate", "ffn_up"):
            m = rand(N_FF, N_EMBD)
            m[:, RESERVED] = 0.0
            w.add_tensor(p + name + ".weight", m)
        d = rand(N_EMBD, N_FF)
        d[RESERVED, :] = 0.0
        w.add_tensor(p + "ffn_down.weight", d)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    out = rand(n_vocab, N_EMBD, scale=0.3)
    out[:, RESERVED] = 0.0
    banned = [i for i, t in enumerate(types) if t != gguf.TokenType.NORMAL]
    out[banned, RESERVED] = -50.0
    w.add_tensor("output.weight", out)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path}: vocab {n_vocab}, {N_LAYER} layers, embedding {N_EMBD}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tiny.gguf")
