#!/usr/bin/env python3
"""Every dataset a pipeline run wrote, loaded as the ecosystem loads it: `datasets.load_dataset("json", ...)` on each
stage directory's shards (and on side stages such as `10-verilog/preference/`), then checked with TRL's own format
helpers. A directory must hold one record kind:

  conversational SFT   every example passes trl.data_utils.is_conversational (a `messages` list of role/content)
  preference           prompt, chosen and rejected on every example, none empty (TRL's DPO keys)
  text                 a `text` string on every example (documents, chunks, packed windows: language modelling)
  other                anything else (e.g. a report's samples), reported but not judged

Prints one JSON object: per directory its kind, rows and columns, and the problems found; exit status 1 on any
problem (a directory that does not load, mixes kinds, or has examples TRL would reject).

    python3 Benchmarks/peers/trl_format_check.py out/demo
"""
import glob
import json
import os
import sys

import datasets
from trl.data_utils import is_conversational

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()


def kind_of(columns):
    if "messages" in columns:
        return "conversational"
    if {"prompt", "chosen", "rejected"} <= set(columns):
        return "preference"
    if "text" in columns:
        return "text"
    return "other"


def check(directory):
    files = sorted(glob.glob(os.path.join(directory, "part-*.jsonl")))
    if not files or all(os.path.getsize(f) == 0 for f in files):
        return None
    result = {"directory": directory, "problems": []}
    try:
        ds = datasets.load_dataset("json", data_files=files, split="train")
    except Exception as e:  # a schema the loader cannot unify is a finding, not a crash of the check
        result["problems"].append(f"datasets cannot load it: {type(e).__name__}: {str(e)[:300]}")
        return result
    columns = ds.column_names
    kind = kind_of(columns)
    result.update(kind=kind, rows=len(ds), columns=columns)
    if kind == "conversational":
        bad = [i for i, ex in enumerate(ds) if not is_conversational(ex)]
        if bad:
            result["problems"].append(f"{len(bad)} examples TRL does not take as conversational (first: {bad[0]})")
        if "chosen" in columns:
            mixed = sum(1 for ex in ds if ex.get("chosen") is not None)
            result["problems"].append(f"mixes kinds: {mixed} preference pairs beside the conversations")
    elif kind == "preference":
        bad = [i for i, ex in enumerate(ds) if not all(ex.get(k) for k in ("prompt", "chosen", "rejected"))]
        if bad:
            result["problems"].append(f"{len(bad)} pairs missing prompt, chosen or rejected (first: {bad[0]})")
    elif kind == "text":
        bad = [i for i, ex in enumerate(ds) if not isinstance(ex.get("text"), str)]
        if bad:
            result["problems"].append(f"{len(bad)} examples without a text string (first: {bad[0]})")
    return result


def main():
    root = sys.argv[1]
    dirs = sorted(d for d in glob.glob(os.path.join(root, "*")) + glob.glob(os.path.join(root, "*", "*"))
                  if os.path.isdir(d) and os.path.exists(os.path.join(d, "manifest.json")))
    results = [r for r in (check(d) for d in dirs) if r is not None]
    problems = sum(len(r["problems"]) for r in results)
    print(json.dumps({"datasets": results, "problems": problems}, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
