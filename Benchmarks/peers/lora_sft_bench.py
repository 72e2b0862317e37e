"""transformers + PEFT peer for `loom-bench lora`: LoRA SFT of a Hugging Face model directory on given token rows.

Rows come from loom-bench (JSON {"ids": [[...]], "labels": [[...]]}, -100 where no loss). LoRA rank r, alpha 2r,
on q/k/v/o/gate/up/down, no dropout; AdamW lr 1e-4 on the adapters; fp32; one row a step; gradient clipping 1.0.
Prints one JSON line: tokens/s over the timed steps, the losses, the peak resident memory. Usage:
  python3 lora_sft_bench.py MODEL_DIR ROWS.json --seq 1024 --steps 4 --warmup 1 --threads 2 --rank 8
"""
import argparse, json, resource, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("rows")
for k, v in dict(seq=1024, steps=4, warmup=1, threads=2, rank=8).items():
    p.add_argument("--" + k, type=int, default=v)
a = p.parse_args()
torch.set_num_threads(a.threads)
rows = json.load(open(a.rows))
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0, bias="none",
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj"], task_type="CAUSAL_LM"))
model.train()
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                        weight_decay=0.1)
losses, times = [], []
for step in range(a.warmup + a.steps):
    r = step % len(rows["ids"])
    ids = torch.tensor([rows["ids"][r]])
    labels = torch.tensor([rows["labels"][r]])
    t0 = time.perf_counter()
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    if step >= a.warmup:
        times.append(dt)
        losses.append(float(out.loss.detach()))
print(json.dumps({
    "side": "transformers+peft", "torch": torch.__version__, "threads": torch.get_num_threads(),
    "tokens_per_s": a.seq * len(times) / sum(times), "losses": losses,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
