"""Checkpoint interop between Loom and transformers (issue 8): run by Tests/LoomTrainTests/InteropTests.swift when
Python with torch and transformers is present.

  hf_interop.py write DIR [--tied] [--kv-heads N]   a random LlamaForCausalLM saved with save_pretrained, plus
                                                     DIR/expected.safetensors: input_ids and transformers' logits
  hf_interop.py logits DIR OUT                       loads DIR (written by Loom; Llama, Qwen 2 or Gemma 3) with
                                                     AutoModelForCausalLM.from_pretrained and saves the
                                                     logits of OUT's input_ids into OUT (logits_hf)
  hf_interop.py peft BASE ADAPTER OUT                loads BASE, then the LoRA ADAPTER (written by Loom) with
                                                     PeftModel.from_pretrained; saves OUT's logits as logits_hf
"""
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

torch.set_num_threads(1)


def write(d, tied, kv):
    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=kv, max_position_embeddings=64, tie_word_embeddings=tied,
                      rope_theta=5000.0, rms_norm_eps=1e-6)
    m = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for n, p in sorted(m.named_parameters()):
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    m.save_pretrained(d)
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = m(input_ids=ids).logits
    save_file({"input_ids": ids, "logits": logits.contiguous()}, d + "/expected.safetensors")


def logits(d, out):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    t = load_file(out)
    with torch.no_grad():
        t["logits_hf"] = m(input_ids=t["input_ids"]).logits.contiguous()
    save_file(t, out)


def peft_logits(base, adapter, out):
    from peft import PeftModel
    m = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    m = PeftModel.from_pretrained(m, adapter).eval()
    t = load_file(out)
    with torch.no_grad():
        t["logits_hf"] = m(input_ids=t["input_ids"]).logits.contiguous()
    save_file(t, out)


if sys.argv[1] == "peft":
    peft_logits(sys.argv[2], sys.argv[3], sys.argv[4])
elif sys.argv[1] == "write":
    write(sys.argv[2], "--tied" in sys.argv, int(sys.argv[sys.argv.index("--kv-heads") + 1]) if "--kv-heads" in sys.argv else 2)
else:
    logits(sys.argv[2], sys.argv[3])
