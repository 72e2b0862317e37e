"""The domain-adaptation table (issue 23) from the eval steps' metrics.json, as Markdown.

    python eval_table.py OUT_DIR [NAME=STEP_DIR ...]     e.g. base=11-eval raw=13-eval rc=15-eval both=17-eval

One row per model, one column per task (RCT and cloze accuracy, RC exact match and F1, held-out bits per byte and
token perplexity), each value with its 95% bootstrap interval.
"""
import json
import os
import sys

out = sys.argv[1]
pairs = [a.split("=", 1) for a in sys.argv[2:]] or [["base", "11-eval"], ["raw", "13-eval"], ["rc", "15-eval"], ["both", "17-eval"]]
cols = [("pubmed-rct", "acc", "RCT acc"), ("cloze", "acc", "cloze acc"), ("generation", "exact_match", "RC exact match"),
        ("generation", "f1", "RC F1"), ("perplexity", "bits_per_byte", "held-out bits/byte"),
        ("perplexity", "token_perplexity", "held-out token ppl")]
print("| model | " + " | ".join(c[2] for c in cols) + " |")
print("| --- |" + " --- |" * len(cols))
items = {}
for name, step in pairs:
    m = json.load(open(os.path.join(out, step, "metrics.json")))
    cells = []
    for task, fig, _ in cols:
        t = m["tasks"].get(task)
        if not t or fig not in t:
            cells.append("–")
            continue
        items[task] = t["items"]
        v, (lo, hi) = t[fig]["value"], t[fig]["ci95"]
        cells.append(f"{v:.3f} [{lo:.3f}, {hi:.3f}]")
    print(f"| {name} | " + " | ".join(cells) + " |")
print()
print("items: " + ", ".join(f"{k} {v}" for k, v in items.items()))
