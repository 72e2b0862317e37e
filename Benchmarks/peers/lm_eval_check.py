"""lm-evaluation-harness (PyPI lm-eval, HF backend) on the items `loom eval` scored, for issue 23's agreement check.

    python lm_eval_check.py MODEL_DIR MC_ITEMS.jsonl TEXT.jsonl LOOM_MC_OUT LOOM_PPL_OUT [--batch-size N] [--threads N]

MC_ITEMS: multiple-choice records {"id","context","choices","gold"}; TEXT: {"id","text"} records. The items become
two local tasks (multiple_choice, loglikelihood_rolling) read with the `json` dataset loader. LOOM_*_OUT are the
`loom eval` output directories for the same files (items.jsonl, metrics.json). Prints item-by-item agreement of acc
and acc_norm, the perplexities of both and their relative difference, and the multiple-choice items/s of both
(evaluation only, model loading excluded on both sides), then one JSON line with every figure.

The multiple-choice run uses the tokenizer's defaults for special tokens (Gemma's adds <bos>, as `loom eval --bos
auto` does); the perplexity run passes add_bos_token=False, so a document's tokens carry no start token and the first
window starts from the prefix token only (with the default, 0.4.13 also scores <bos> after the prefix <bos>).
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("mc")
    ap.add_argument("text")
    ap.add_argument("loom_mc")
    ap.add_argument("loom_ppl")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-length", type=int, default=None)
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks = tempfile.mkdtemp(prefix="loom-lm-eval-")
    with open(os.path.join(tasks, "loom_mc.yaml"), "w") as f:
        f.write(f"""task: loom_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {os.path.abspath(a.mc)}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    with open(os.path.join(tasks, "loom_ppl.yaml"), "w") as f:
        f.write(f"""task: loom_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {os.path.abspath(a.text)}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""")
    tm = TaskManager(include_path=tasks)
    extra = {"max_length": a.max_length} if a.max_length else {}

    def run(task, **model_args):
        lm = HFLM(pretrained=a.model, dtype="float32", batch_size=a.batch_size, device="cpu", **extra, **model_args)
        start = time.time()
        out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=tm, log_samples=True, num_fewshot=0,
                                      bootstrap_iters=0)
        return out, time.time() - start

    mc, mc_seconds = run("loom_mc")
    ppl, _ = run("loom_ppl", add_bos_token=False)

    # Item by item: lm-eval's samples carry the doc (with our id) and its acc / acc_norm.
    loom_items = {}
    for line in open(os.path.join(a.loom_mc, "items.jsonl")):
        r = json.loads(line)
        loom_items[r["id"]] = r
    same_acc = same_norm = n = 0
    max_ll_diff = 0.0
    flips = []
    for s in mc["samples"]["loom_mc"]:
        doc = s["doc"]
        i = str(doc["id"])
        r = loom_items[i]
        n += 1
        same_acc += int(s["acc"] == r["acc"])
        same_norm += int(s["acc_norm"] == r["acc_norm"])
        lls = [float(x[0]) for x in s["filtered_resps"]]
        for x, y in zip(lls, r["loglik"]):
            max_ll_diff = max(max_ll_diff, abs(x - y))
        if s["acc"] != r["acc"] or s["acc_norm"] != r["acc_norm"]:
            flips.append((i, lls, r["loglik"]))
    loom_metrics = json.load(open(os.path.join(a.loom_mc, "metrics.json")))
    loom_rate = loom_metrics["multiple_choice_items_per_second"]
    peer_rate = n / mc_seconds

    # Perplexity: per document and over the set.
    loom_docs = {}
    for line in open(os.path.join(a.loom_ppl, "items.jsonl")):
        r = json.loads(line)
        if r["kind"] == "perplexity":
            loom_docs[r["id"]] = r
    peer_ll = loom_ll = 0.0
    nbytes = 0
    max_doc_rel = 0.0
    for s in ppl["samples"]["loom_ppl"]:
        i = str(s["doc"]["id"])
        ll = float(s["filtered_resps"][0]) if not isinstance(s["filtered_resps"][0], (list, tuple)) else float(s["filtered_resps"][0][0])
        r = loom_docs[i]
        peer_ll += ll
        loom_ll += r["logprob"]
        nbytes += r["bytes"]
        max_doc_rel = max(max_doc_rel, abs(ll - r["logprob"]) / max(1e-9, abs(ll)))
    peer_bpp = math.exp(-peer_ll / nbytes)
    loom_bpp = math.exp(-loom_ll / nbytes)
    res = ppl["results"]["loom_ppl"]
    summary = {
        "model": a.model,
        "mc_items": n,
        "acc_same": same_acc,
        "acc_norm_same": same_norm,
        "max_loglik_abs_diff": max_ll_diff,
        "acc": {"lm_eval": mc["results"]["loom_mc"]["acc,none"], "loom": loom_metrics["tasks"][next(iter(loom_metrics["tasks"]))]["acc"]["value"]},
        "acc_norm": {"lm_eval": mc["results"]["loom_mc"]["acc_norm,none"], "loom": loom_metrics["tasks"][next(iter(loom_metrics["tasks"]))]["acc_norm"]["value"]},
        "byte_perplexity": {"lm_eval": res["byte_perplexity,none"], "lm_eval_from_items": peer_bpp, "loom": loom_bpp,
                             "rel_diff": abs(loom_bpp - peer_bpp) / peer_bpp},
        "word_perplexity_lm_eval": res["word_perplexity,none"],
        "max_doc_loglik_rel_diff": max_doc_rel,
        "mc_items_per_second": {"lm_eval": peer_rate, "loom": loom_rate, "ratio": loom_rate / peer_rate},
        "lm_eval_batch_size": a.batch_size,
        "threads": a.threads,
    }
    print(f"{a.model}: multiple choice {n} items: acc same on {same_acc}, acc_norm same on {same_norm}; "
          f"largest log-likelihood difference {max_ll_diff:.2e}")
    for i, x, y in flips[:5]:
        print(f"  differs: item {i}: lm-eval {x} loom {y}")
    print(f"  byte perplexity: lm-eval {res['byte_perplexity,none']:.6f} (from its items {peer_bpp:.6f}), loom {loom_bpp:.6f}, "
          f"relative difference {summary['byte_perplexity']['rel_diff']:.2e}; largest per-document {max_doc_rel:.2e}")
    print(f"  multiple-choice items/s: lm-eval {peer_rate:.2f} (batch {a.batch_size}), loom {loom_rate:.2f}: {loom_rate / peer_rate:.2f}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
