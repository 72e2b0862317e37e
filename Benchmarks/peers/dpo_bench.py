"""PyTorch peer for `loom-bench dpo`: one epoch of DPO (sigmoid, beta 0.1) over the pairs in PAIRS.jsonl with
transformers LlamaForCausalLM (fp32, eager attention, AdamW), the way TRL's DPOTrainer batches: each batch's chosen
and rejected sequences concatenated and right-padded to the longest one, completion tokens masked in. Reference
log-probabilities are computed once, before the timed epoch, from the starting weights.

Prints one JSON line: pairs/s over the timed epoch (after one warm-up step), tokens run (padding included) and real,
the first loss and the peak resident memory. Usage:
  python3 dpo_bench.py PAIRS.jsonl --batch 4 --hidden 256 --intermediate 688 --layers 4 --heads 4 --vocab 8192 \
      --threads 2
"""
import argparse, json, resource, time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("pairs")
for k, v in dict(batch=4, hidden=256, intermediate=688, layers=4, heads=4, vocab=8192, threads=2, seed=0).items():
    p.add_argument("--" + k, type=int, default=v)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
pairs = [json.loads(l) for l in open(a.pairs)]
longest = max(len(x["prompt"]) + max(len(x["chosen"]), len(x["rejected"])) for x in pairs)
cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                  num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                  max_position_embeddings=max(1024, longest), tie_word_embeddings=False, attn_implementation="eager")
model = LlamaForCausalLM(cfg).float().train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def collate(batch):
    seqs = [x["prompt"] + x["chosen"] for x in batch] + [x["prompt"] + x["rejected"] for x in batch]
    comp = [[0] * len(x["prompt"]) + [1] * len(x["chosen"]) for x in batch] + \
           [[0] * len(x["prompt"]) + [1] * len(x["rejected"]) for x in batch]
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])
    att = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
    mask = torch.tensor([c + [0] * (T - len(c)) for c in comp], dtype=torch.float32)
    return ids, att, mask


def logps(ids, att, mask):
    logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]
    lp = torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(2)
    return (lp * mask[:, 1:]).sum(-1)


batches = [collate(pairs[i:i + a.batch]) for i in range(0, len(pairs), a.batch)]
with torch.no_grad():
    refs = [logps(*b) for b in batches]


def step(b, ref):
    lp = logps(*b)
    n = lp.shape[0] // 2
    z = (lp[:n] - lp[n:]) - (ref[:n] - ref[n:])
    loss = -F.logsigmoid(0.1 * z).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


step(batches[0], refs[0])  # warm-up
t0 = time.perf_counter()
losses = [step(b, r) for b, r in zip(batches, refs)]
dt = time.perf_counter() - t0
print(json.dumps({
    "side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
    "pairs_per_s": len(pairs) / dt, "epoch_s": dt, "steps": len(batches),
    "tokens_run": sum(b[0].numel() for b in batches),
    "real_tokens": sum(len(x["prompt"]) * 2 + len(x["chosen"]) + len(x["rejected"]) for x in pairs),
    "first_loss": losses[0], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
