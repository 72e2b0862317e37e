#!/usr/bin/env python3
"""Peer for `loom-bench sample`: greedy generation tokens/s of transformers' `generate` (KV cache, fp32, CPU).

    generate_bench.py make DIR [--hidden 256 --layers 4 ...]   a random LlamaForCausalLM + prompt.json in DIR
    generate_bench.py run DIR --threads 2 --new 128             time generate; prints one JSON line

The time covers the whole `generate` call (prompt prefill + new tokens), best of --repeats after one warm-up.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def make(a):
    torch.manual_seed(0)
    c = LlamaConfig(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, max_position_embeddings=2048,
        rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.1, bos_token_id=None,
        eos_token_id=None, pad_token_id=None)
    m = LlamaForCausalLM(c).eval()
    os.makedirs(a.dir, exist_ok=True)
    m.save_pretrained(a.dir)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, a.vocab, (a.prompt,), generator=g).tolist()
    with open(os.path.join(a.dir, "prompt.json"), "w") as f:
        json.dump({"prompt": prompt}, f)
    print(json.dumps({"params": sum(p.numel() for p in m.parameters())}))


def run(a):
    torch.set_num_threads(a.threads)
    m = LlamaForCausalLM.from_pretrained(a.dir, dtype=torch.float32).eval()
    prompt = json.load(open(os.path.join(a.dir, "prompt.json")))["prompt"]
    ids = torch.tensor([prompt])
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False, num_beams=1,
              eos_token_id=None, pad_token_id=0)
    best, out = float("inf"), None
    with torch.inference_mode():
        m.generate(ids, **kw)  # warm-up
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            out = m.generate(ids, **kw)
            best = min(best, time.perf_counter() - t0)
    gen = out[0, len(prompt):].tolist()
    print(json.dumps({
        "side": "transformers", "torch": torch.__version__, "threads": a.threads, "seconds": best,
        "tokens_per_s": a.new / best, "tokens": gen,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["make", "run"])
    ap.add_argument("dir")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=688)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    make(a) if a.mode == "make" else run(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
