"""Makes random-weight LoRA adapters (PEFT's format, no `peft` needed) for the tiny model of
scripts/tiny_vllm_model.py, so a real vLLM serves a multi-LoRA mix on this machine.

    python scripts/tiny_lora.py MODEL_DIR OUT_DIR NAME [NAME …]

OUT_DIR/NAME: `adapter_config.json` (LORA, rank 8, alpha 16, on q_proj and v_proj) and
`adapter_model.safetensors` (`base_model.model.model.layers.{l}.self_attn.{q,v}_proj.lora_{A,B}.weight`,
A [r, hidden], B [out, r]) with seeded random weights: each name its own seed, B non-zero so the
adapter changes the model's answers. vLLM's CPU backend loads them with `--enable-lora
--lora-modules NAME=OUT_DIR/NAME` (rank ≤ its default `--max-lora-rank` 16).
"""

import json
import os
import sys
import zlib

import torch
from safetensors.torch import save_file

RANK = 8


def main(model_dir, out_dir, names):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    hidden = cfg["hidden_size"]
    head_dim = cfg.get("head_dim") or hidden // cfg["num_attention_heads"]
    outs = {"q_proj": cfg["num_attention_heads"] * head_dim,
            "v_proj": cfg["num_key_value_heads"] * head_dim}
    for name in names:
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        tensors = {}
        for layer in range(cfg["num_hidden_layers"]):
            for proj, out in outs.items():
                key = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
                tensors[f"{key}.lora_A.weight"] = (torch.randn(RANK, hidden, generator=gen) * 0.02).to(torch.bfloat16)
                tensors[f"{key}.lora_B.weight"] = (torch.randn(out, RANK, generator=gen) * 0.02).to(torch.bfloat16)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        save_file(tensors, os.path.join(d, "adapter_model.safetensors"))
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 16,
                       "lora_dropout": 0.0, "target_modules": list(outs), "bias": "none",
                       "fan_in_fan_out": False, "base_model_name_or_path": model_dir}, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
