"""transformers peer for `loom-bench decode`: greedy decoding with the KV cache from given prompt ids.

Prints one JSON line: new tokens/s (after a warm-up generation), the generated ids. Usage:
  python3 decode_bench.py MODEL_DIR 2,818,5279 --tokens 64 --threads 2
"""
import argparse, json, resource, time

import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("ids")
p.add_argument("--tokens", type=int, default=64)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
ids = torch.tensor([[int(x) for x in a.ids.split(",")]])
with torch.no_grad():
    model.generate(ids[:, :4], max_new_tokens=2, do_sample=False)  # warm-up
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=a.tokens, min_new_tokens=a.tokens, do_sample=False)
    dt = time.perf_counter() - t0
new = out[0, ids.shape[1]:].tolist()
print(json.dumps({"side": "transformers", "tokens": len(new), "tokens_per_s": len(new) / dt, "ids": new,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
