#!/usr/bin/env python3
"""Greedy generation: Loom against transformers' `generate` on the same checkpoint.

Builds a small random LlamaForCausalLM (GQA, untied head; seeded), saves it with save_pretrained (config.json +
model.safetensors), runs greedy `generate` on a few prompts of token ids, and writes what it got to
DIR/expected.json. With --loom it also runs `loom generate text DIR --ids ... --max-tokens N --output ids` for each
prompt and compares the token ids (exit status 1 on a mismatch).

    python3 Benchmarks/peers/generate_check.py /tmp/gen-check --loom .build/release/loom
    python3 Benchmarks/peers/generate_check.py /tmp/gen-check            # only the model and expected.json

The Swift test LoomTrainTests/TransformersGenerateTests runs the first part and generates in-process.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--loom", help="the loom executable to compare against")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=320)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    config = LlamaConfig(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.hidden * 3, num_hidden_layers=a.layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
        rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.15, bos_token_id=None,
        eos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(config).eval()
    os.makedirs(a.dir, exist_ok=True)
    model.save_pretrained(a.dir)

    g = torch.Generator().manual_seed(a.seed + 1)
    prompts = [torch.randint(0, a.vocab, (n,), generator=g).tolist() for n in (1, 7, 23)]
    cases = []
    with torch.no_grad():
        for p in prompts:
            out = model.generate(
                torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                max_new_tokens=a.max_new_tokens, min_new_tokens=a.max_new_tokens, do_sample=False, num_beams=1,
                eos_token_id=None, pad_token_id=0)
            cases.append({"prompt": p, "generated": out[0, len(p):].tolist()})
    with open(os.path.join(a.dir, "expected.json"), "w") as f:
        json.dump({"max_new_tokens": a.max_new_tokens, "cases": cases}, f)
    print(f"transformers: {len(cases)} prompts, {a.max_new_tokens} greedy tokens each -> {a.dir}/expected.json")

    if not a.loom:
        return 0
    bad = 0
    for c in cases:
        r = subprocess.run(
            [a.loom, "generate", "text", a.dir, "--ids", ",".join(map(str, c["prompt"])),
             "--max-tokens", str(a.max_new_tokens), "--output", "ids"],
            capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        got = [int(x) for x in r.stdout.split()]
        same = got == c["generated"]
        bad += not same
        print(f"prompt of {len(c['prompt'])} tokens: {'same' if same else 'DIFFERENT'} ({len(got)} tokens)")
        if not same:
            print("  transformers:", c["generated"])
            print("  loom:        ", got)
    print("all identical" if bad == 0 else f"{bad} prompt(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
