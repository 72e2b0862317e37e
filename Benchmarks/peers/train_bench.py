"""PyTorch peer for `loom-bench train`: transformers LlamaForCausalLM, AdamW, fp32, on random token batches.

Prints one JSON line: tokens/s over the timed steps (after warm-up), the mean step time, the loss of each timed step
and the peak resident memory of this process. Usage:
  python3 train_bench.py --hidden 256 --intermediate 688 --layers 4 --heads 4 --vocab 8192 --seq 256 --batch 8 \
      --threads 2 --steps 5 --warmup 2
"""
import argparse, json, resource, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
for k, v in dict(hidden=256, intermediate=688, layers=4, heads=4, kv_heads=0, vocab=8192, seq=256, batch=8,
                 threads=2, steps=5, warmup=2, seed=0).items():
    p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                  num_hidden_layers=a.layers, num_attention_heads=a.heads,
                  num_key_value_heads=a.kv_heads or a.heads, max_position_embeddings=max(1024, a.seq),
                  tie_word_embeddings=False, attn_implementation="eager")
model = LlamaForCausalLM(cfg).float().train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
g = torch.Generator().manual_seed(a.seed)
ids = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
losses, times = [], []
for step in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    if step >= a.warmup:
        times.append(dt)
        losses.append(float(out.loss.detach()))
tokens = a.batch * a.seq
print(json.dumps({
    "side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
    "tokens_per_s": tokens * len(times) / sum(times), "step_s": sum(times) / len(times),
    "best_step_s": min(times), "losses": losses,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "params": sum(p.numel() for p in model.parameters()),
}))
