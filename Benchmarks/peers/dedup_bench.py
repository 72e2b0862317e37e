"""The peers for `loom-bench dedup`: datasketch and rensa over one JSON Lines corpus, end to end.

Usage: python3 dedup_bench.py datasketch|rensa CORPUS.jsonl PAIRS_OUT.tsv [--num-perm 128] [--threshold 0.8]
                              [--bands B]

Each run reads the corpus, shingles every text the way the corpus's ground truth does (tokens = text.split(" "),
word 5-grams joined by one space, set semantics, a text shorter than 5 tokens is one shingle), builds one MinHash
per document with the same num_perm, indexes them in the library's LSH, queries every document, keeps the candidate
pairs whose MinHash estimate reaches the threshold and writes them (id_a id_b estimate, id_a < id_b). The last line
on stdout is JSON: documents, seconds per phase (CPU), wall seconds and peak RSS.

datasketch: MinHash(num_perm, seed=1) + MinHashLSH(threshold, num_perm) (it picks b x r itself, b=9 r=13 here).
rensa: RMinHash(num_perm, seed=42) + RMinHashLSH(threshold, num_perm, num_bands=B) (default 16: the setting with
the better recall on this corpus; rensa has no automatic choice).
"""
import json
import resource
import sys
import time


def shingles(text, n=5):
    tokens = text.split(" ")
    if len(tokens) < n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def main():
    args = sys.argv[1:]
    peer, corpus, out = args[0], args[1], args[2]
    num_perm, threshold, bands = 128, 0.8, 16
    i = 3
    while i < len(args):
        if args[i] == "--num-perm":
            num_perm = int(args[i + 1])
        elif args[i] == "--threshold":
            threshold = float(args[i + 1])
        elif args[i] == "--bands":
            bands = int(args[i + 1])
        else:
            sys.exit(f"unknown option {args[i]}")
        i += 2

    wall0 = time.perf_counter()
    phases = {}
    t = time.process_time()
    ids, sets = [], []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            ids.append(record["id"])
            sets.append(shingles(record["text"]))
    phases["read_shingle"] = time.process_time() - t

    t = time.process_time()
    if peer == "datasketch":
        from datasketch import MinHash, MinHashLSH
        hashes = []
        for s in sets:
            m = MinHash(num_perm=num_perm, seed=1)
            m.update_batch([x.encode("utf-8") for x in s])
            hashes.append(m)
    elif peer == "rensa":
        from rensa import RMinHash, RMinHashLSH
        hashes = []
        for s in sets:
            m = RMinHash(num_perm=num_perm, seed=42)
            m.update(list(s))
            hashes.append(m)
    else:
        sys.exit(f"unknown peer {peer}")
    phases["signatures"] = time.process_time() - t

    t = time.process_time()
    pairs = set()
    if peer == "datasketch":
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        for k, m in enumerate(hashes):
            lsh.insert(k, m)
        for k, m in enumerate(hashes):
            for other in lsh.query(m):
                if other != k:
                    pairs.add((min(k, other), max(k, other)))
    else:
        lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands)
        for k, m in enumerate(hashes):
            lsh.insert(k, m)
        for k, m in enumerate(hashes):
            for other in lsh.query(m):
                if other != k:
                    pairs.add((min(k, other), max(k, other)))
    phases["lsh"] = time.process_time() - t

    t = time.process_time()
    kept = []
    for a, b in sorted(pairs):
        estimate = hashes[a].jaccard(hashes[b])
        if estimate >= threshold:
            kept.append((ids[a], ids[b], estimate))
    phases["verify"] = time.process_time() - t

    with open(out, "w") as f:
        for a, b, e in kept:
            x, y = (a, b) if a < b else (b, a)
            f.write(f"{x}\t{y}\t{e:.6f}\n")
    wall = time.perf_counter() - wall0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peer": peer, "documents": len(ids), "candidates": len(pairs), "pairs": len(kept),
                      "phases_cpu_s": {k: round(v, 3) for k, v in phases.items()},
                      "cpu_s": round(sum(phases.values()), 3), "wall_s": round(wall, 3),
                      "peak_mb": round(peak_mb, 1)}))


if __name__ == "__main__":
    main()
