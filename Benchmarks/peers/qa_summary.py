#!/usr/bin/env python3
"""Summarise `loom generate qa` runs on real models (issue 22): for each run directory, the share of input chunks
with at least one schema-valid QA pair, the share of grounded answers (meta.scores.grounding >= 0.5), the parse
rate (chunks whose reply parsed), request failures, and N example pairs.

    python3 Benchmarks/peers/qa_summary.py CHUNKS.jsonl templates/qa/schema.json RUN_DIR [RUN_DIR ...] [--examples 5]
"""
import argparse, glob, json, os, random


def valid(pair, schema):
    """The pair against the items schema of qa/schema.json (types, lengths in characters, no extra keys)."""
    items = schema["properties"]["pairs"]["items"]
    if set(pair) - set(items["properties"]) or any(k not in pair for k in items.get("required", [])):
        return False
    for k, rule in items["properties"].items():
        v = pair.get(k)
        if not isinstance(v, str):
            return False
        if len(v) < rule.get("minLength", 0) or len(v) > rule.get("maxLength", 10**9):
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("chunks")
    ap.add_argument("schema")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--examples", type=int, default=5)
    a = ap.parse_args()
    chunks = [json.loads(l) for l in open(a.chunks)]
    ids = {c["id"] for c in chunks}
    schema = json.load(open(a.schema))
    for run in a.runs:
        m = json.load(open(os.path.join(run, "manifest.json")))
        recs = [json.loads(l) for f in sorted(glob.glob(os.path.join(run, "part-*.jsonl"))) for l in open(f)]
        with_valid, grounded, answers, examples = set(), 0, 0, []
        for r in recs:
            chunk = r["meta"]["provenance"]["ids"][0]
            q = r["messages"][0]["content"]
            ans = r["messages"][1]["content"]
            # The record holds the pair as the model wrote it (trimmed): the question is the user turn's text.
            pair = {"question": q, "answer": ans}
            if valid(pair, schema):
                with_valid.add(chunk)
            answers += 1
            if r["meta"]["scores"]["grounding"] >= 0.5:
                grounded += 1
            examples.append((chunk, q, ans, r["meta"]["scores"]))
        c = m["counts"]
        n = len(ids)
        print(f"== {run}")
        print(f"  chunks {n}; with >=1 schema-valid pair {len(with_valid & ids)} ({100 * len(with_valid & ids) / n:.1f}%)")
        print(f"  pairs {answers}; grounded (score >= 0.5) {grounded} ({100 * grounded / max(1, answers):.1f}%)")
        unparseable = c.get("unparseable_replies", 0)
        failed = c.get("failed_chunks", 0)
        print(f"  replies parsed {n - unparseable - failed} of {n - failed} ({100 * (n - unparseable - failed) / max(1, n - failed):.1f}%);"
              f" failed requests {failed}; wrong language {c.get('wrong_language', 0)}; unsupported {c.get('unsupported_answers', 0)}")
        random.Random(22).shuffle(examples)
        for chunk, q, ans, g in examples[: a.examples]:
            print(f"  - [{chunk}] Q: {q}\n    A: {ans}  (grounding {g['grounding']}, span {g['longest_span']})")


if __name__ == "__main__":
    main()
