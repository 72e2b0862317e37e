"""The peer for `loom-bench tokenizer`: Hugging Face tokenizers encoding the same documents on one thread.

Usage: RAYON_NUM_THREADS=1 python3 tokenizer_bench.py TOKENIZER.json CORPUS.jsonl [--megabytes M] [--runs N]

Reads the `text` of the corpus's records in order until M MB of UTF-8 (default: all), then N times: loads the
tokenizer afresh (so its word cache starts empty, as Loom's does) and encodes every document with
`encode(text, add_special_tokens=False)` one by one ("single"), and again with `encode_batch` ("batch"; with
RAYON_NUM_THREADS=1 this is one thread too). Only the encoding is timed (time.perf_counter). The last line on stdout
is JSON: documents, bytes, tokens, the SHA-256 of all ids (int32 little-endian, each document followed by -1) and
the seconds of each run.
"""
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    args = sys.argv[1:]

    def opt(name, default):
        if name in args:
            i = args.index(name)
            v = args[i + 1]
            del args[i:i + 2]
            return v
        return default

    megabytes = float(opt("--megabytes", "0"))
    runs = int(opt("--runs", "3"))
    tok_path, corpus = args[0], args[1]
    texts, size = [], 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line).get("text")
            if not isinstance(t, str):
                continue
            texts.append(t)
            size += len(t.encode("utf-8"))
            if megabytes and size >= megabytes * 1e6:
                break
    single, batch = [], []
    digest, tokens = None, 0
    for _ in range(runs):
        tok = Tokenizer.from_file(tok_path)
        t0 = time.perf_counter()
        out = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        single.append(time.perf_counter() - t0)
        tok = Tokenizer.from_file(tok_path)
        t0 = time.perf_counter()
        tok.encode_batch(texts, add_special_tokens=False)
        batch.append(time.perf_counter() - t0)
        if digest is None:
            h = hashlib.sha256()
            sep = (-1).to_bytes(4, "little", signed=True)
            for ids in out:
                h.update(b"".join(i.to_bytes(4, "little", signed=True) for i in ids))
                h.update(sep)
                tokens += len(ids)
            digest = h.hexdigest()
    print(json.dumps({
        "tokenizers": tokenizers.__version__, "threads": os.environ.get("RAYON_NUM_THREADS"),
        "documents": len(texts), "bytes": size, "tokens": tokens, "ids_sha256": digest,
        "single_seconds": single, "batch_seconds": batch,
    }))


if __name__ == "__main__":
    main()
