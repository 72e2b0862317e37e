#!/usr/bin/env python3
"""MinHash near-duplicate removal on Apache Spark, with `loom` doing every per-record step.

The computation is the one `loom dedup minhash` runs on one machine (DESIGN.md), cut where the data is smallest:

  1. signatures   one Spark task per shard i/N runs `loom dedup minhash-signatures INPUT... --shard i/N`
                  (normalisation, shingles, MinHash, LSH band keys, the shingle spool) into WORK/sig/i;
  2. band keys    each task prints its shard's keys (`loom dedup band-keys`); Spark shuffles them by
                  (band, key) and forms candidate pairs per bucket exactly as Loom does (all pairs in a
                  bucket of at most 64 documents, else each member with the bucket's first);
  3. verify       the candidate pairs are piped (RDD.pipe) through `loom dedup verify-pairs`, which
                  confirms each with the exact Jaccard of the shingle sets (or the MinHash estimate);
  4. components   connected components of the confirmed pairs by iterated min-label propagation;
                  every document whose label is not itself is removed (the first of each cluster, in
                  input order, is kept, as `--keep first` does);
  5. filter       one task per shard runs `loom dedup apply WORK/sig/i --removed WORK/removed/i.txt`,
                  and `loom merge-manifests` checks all N shards and joins them into OUTPUT.

The kept records are byte for byte those of `loom dedup minhash INPUT... --keep first` with the same options.
A task that dies (an executor lost, a `loom` process killed) is retried by Spark; each `loom` stage starts
over cleanly in its own shard directory, so a retry never duplicates records.

WORK, OUTPUT and the inputs must be paths every executor sees (a shared file system on a cluster; any local
directory in local mode). `loom` must run on every executor: give its path with --loom, or ship it with
`spark-submit --files /path/to/loom` (the driver then uses the shipped copy).

    spark-submit --master local[2] integrations/spark/loom_dedup.py \\
        --work /tmp/w --output out/dedup --shards 8 corpus/*.jsonl -- --threshold 0.8
"""

import argparse
import bisect
import json
import os
import shlex
import stat
import subprocess
import sys
import time

# Loom's rule for a bucket of documents sharing a band key (Sources/LoomDedup/Clusters.swift, allPairsBucket).
ALL_PAIRS_BUCKET = 64


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Sharded MinHash dedup on Spark; every record is processed by loom on the executors.",
        epilog="Arguments after -- go to 'loom dedup minhash-signatures' (e.g. -- --threshold 0.7 --ngram 3).",
    )
    p.add_argument("inputs", nargs="+", help="JSON Lines files or directories (as for loom dedup minhash)")
    p.add_argument("--work", required=True, help="shared scratch directory (signatures, removal lists, kept shards)")
    p.add_argument("--output", "-o", required=True, help="the kept records, one Loom stage directory")
    p.add_argument("--shards", type=int, default=0, help="number of shards (default: Spark's default parallelism)")
    p.add_argument("--loom", default=None, help="path of the loom binary on the executors (default: shipped copy or PATH)")
    p.add_argument("--jobs", type=int, default=1, help="threads each loom process uses (default 1: Spark runs tasks in parallel)")
    p.add_argument("--master", default=None, help="Spark master when run with python instead of spark-submit, e.g. local[2]")
    p.add_argument("--max-iterations", type=int, default=100, help="limit on label-propagation rounds")
    if "--" in argv:
        k = argv.index("--")
        args, extra = p.parse_args(argv[:k]), argv[k + 1:]
    else:
        args, extra = p.parse_args(argv), []
    for bad in ("--shard", "-o", "--output", "--keep"):
        if any(e == bad or e.startswith(bad + "=") for e in extra):
            if bad == "--keep" and any(e in ("first", "--keep=first") for e in extra):
                continue
            sys.exit(f"loom_dedup.py: '{bad}' cannot be passed to minhash-signatures here"
                     + (" (Spark keeps the first record of each cluster: --keep first)" if bad == "--keep" else ""))
    args.extra = extra
    args.inputs = [os.path.abspath(i) for i in args.inputs]
    args.work = os.path.abspath(args.work)
    args.output = os.path.abspath(args.output)
    return args


def loom_path(given):
    """The loom binary on this executor: --loom, else a copy shipped with spark-submit --files, else PATH."""
    if given:
        return given
    try:
        from pyspark import SparkFiles
        shipped = SparkFiles.get("loom")
        if os.path.exists(shipped):
            mode = os.stat(shipped).st_mode
            if not mode & stat.S_IXUSR:
                os.chmod(shipped, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return shipped
    except Exception:
        pass
    return "loom"


def run_loom(loom, args, stdout=subprocess.DEVNULL):
    """Runs loom; a non-zero exit (or a kill) fails the Spark task with loom's own message, so Spark retries it."""
    r = subprocess.run([loom] + args, stdout=stdout, stderr=subprocess.PIPE)
    if r.returncode != 0:
        tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RuntimeError(f"loom {' '.join(args[:3])} ... exited with {r.returncode}: " + " | ".join(tail))
    return r


def bucket_pairs(docs):
    """Candidate pairs of one (band, key) bucket, as Loom forms them."""
    d = sorted(docs)
    if len(d) <= 1:
        return []
    if len(d) <= ALL_PAIRS_BUCKET:
        return [(d[x], d[y]) for x in range(len(d) - 1) for y in range(x + 1, len(d))]
    return [(d[0], y) for y in d[1:]]


rounds = [0]


def connected_components(edges, max_iterations, partitions):
    """(node, label) with label the smallest node of its component: min-label propagation until nothing changes."""
    p = partitions
    both = edges.flatMap(lambda e: [(e[0], e[1]), (e[1], e[0])]).distinct(p).partitionBy(p).cache()
    labels = both.keys().distinct(p).map(lambda n: (n, n)).partitionBy(p).cache()
    for _ in range(max_iterations):
        # Each node takes the smallest label among itself and its neighbours (same partitioner: no growth in
        # the number of partitions from round to round).
        offered = both.join(labels, p).map(lambda kv: (kv[1][0], kv[1][1]))
        updated = labels.union(offered).reduceByKey(min, p).cache()
        changed = updated.join(labels, p).filter(lambda kv: kv[1][0] != kv[1][1]).count()
        labels.unpersist()
        labels = updated
        rounds[0] += 1
        if changed == 0:
            return labels
    raise RuntimeError(f"label propagation did not converge in {max_iterations} rounds (raise --max-iterations)")


def main(argv):
    args = parse_args(argv)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("loom-dedup-minhash").config("spark.ui.showConsoleProgress", "false")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    n = args.shards or sc.defaultParallelism
    work, inputs, extra, jobs, given = args.work, args.inputs, args.extra, str(args.jobs), args.loom
    sig = [os.path.join(work, "sig", str(i)) for i in range(n)]
    os.makedirs(os.path.join(work, "sig"), exist_ok=True)

    # 1. Signatures, one task per shard. The stage is skipped when its directory is already up to date (a task
    #    retried after loom finished), and starts over cleanly when an earlier attempt was killed.
    def signatures(i):
        loom = loom_path(given)
        run_loom(loom, ["dedup", "minhash-signatures", *inputs, "--shard", f"{i}/{n}", "-o", sig[i],
                        "--jobs", jobs, "-q", *extra])
        with open(os.path.join(sig[i], "manifest.json")) as f:
            return i, json.load(f)["counts"]["documents"]

    clock, last = {}, [time.time()]

    def lap(name):
        # Seconds spent in each phase, for the summary line.
        now = time.time()
        clock[name] = now - last[0]
        last[0] = now

    counts = dict(sc.parallelize(range(n), n).map(signatures).collect())
    lap("signatures")
    offsets, total = [], 0
    for i in range(n):
        offsets.append(total)
        total += counts[i]

    # 2. Band keys, shuffled by (band, key) in Spark; documents numbered globally (shards in order).
    def band_keys(i):
        out = run_loom(loom_path(given), ["dedup", "band-keys", sig[i]], stdout=subprocess.PIPE).stdout
        base = offsets[i]
        for line in out.splitlines():
            band, key, doc = line.split()
            yield (int(band), int(key)), base + int(doc)

    keys = sc.parallelize(range(n), n).flatMap(band_keys)
    candidates = keys.groupByKey(n).flatMap(lambda kv: bucket_pairs(kv[1])).distinct(n).cache()

    # 3. Verification by loom, through a pipe per partition.
    loom_exe = given or "loom"
    verify_cmd = " ".join(shlex.quote(x) for x in [loom_exe, "dedup", "verify-pairs", *sig])
    if given is None:
        # RDD.pipe runs a command line; use the shipped copy when there is one.
        def verify(part):
            cmd = [loom_path(None), "dedup", "verify-pairs", *sig]
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            data = "".join(f"{a} {b}\n" for a, b in part).encode()
            out, err = p.communicate(data)
            if p.returncode != 0:
                raise RuntimeError("loom dedup verify-pairs failed: " + err.decode("utf-8", "replace")[-500:])
            return out.decode().splitlines()
        confirmed_lines = candidates.mapPartitions(verify)
    else:
        confirmed_lines = candidates.map(lambda p: f"{p[0]} {p[1]}").pipe(verify_cmd, checkCode=True)
    edges = confirmed_lines.map(lambda l: tuple(int(x) for x in l.split()[:2])).cache()
    confirmed = edges.count()
    lap("band_keys_candidates_verify")

    # 4. Connected components; every document that is not its component's smallest is removed.
    removed = []
    if confirmed:
        removed = connected_components(edges, args.max_iterations, sc.defaultParallelism).filter(lambda kv: kv[0] != kv[1]).keys().collect()
    lap("components")
    per_shard = [[] for _ in range(n)]
    for g in sorted(removed):
        s = bisect.bisect_right(offsets, g) - 1  # the last shard starting at or before g (empty ones start with the next)
        per_shard[s].append(g - offsets[s])
    rdir = os.path.join(work, "removed")
    os.makedirs(rdir, exist_ok=True)
    rfiles = []
    for i in range(n):
        path = os.path.join(rdir, f"{i}.txt")
        text = "".join(f"{d}\n" for d in per_shard[i])
        # Rewritten only when it changed, so an up-to-date apply stage is not re-run for nothing.
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        rfiles.append(path)

    # 5. The filter, one task per shard, then the check that all N shards are there and the join.
    kept = [os.path.join(work, "kept", str(i)) for i in range(n)]

    def apply(i):
        run_loom(loom_path(given), ["dedup", "apply", sig[i], "--removed", rfiles[i], "-o", kept[i], "-q"])
        return i

    sc.parallelize(range(n), n).map(apply).collect()
    run_loom(loom_path(given), ["merge-manifests", *kept, "-o", args.output, "-q"])
    lap("apply_merge")
    summary = {"label_rounds": rounds[0], "seconds": {k: round(v, 1) for k, v in clock.items()}, "shards": n, "documents": total, "candidates": candidates.count(), "confirmed_pairs": confirmed,
               "removed": len(removed), "kept": total - len(removed), "output": args.output}
    print(json.dumps(summary))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
