"""Peer for `loom-bench neighbours`: faiss (pip install faiss-cpu) on the same vectors.

usage: faiss_neighbours.py VECTORS.bin K THREADS LAYOUTS OUTDIR
  VECTORS.bin  a Loom vectors file (LOOMVEC1, header length, JSON header, float32 rows)
  LAYOUTS      comma-separated NLIST:NPROBE
Searches the K nearest neighbours of every vector (itself excluded) with IndexFlatIP (exact) and with
IndexIVFFlat (inner product, spherical k-means, 10 iterations on 32 points a list, as Loom's IVF) at each layout,
on THREADS OpenMP threads. Writes OUTDIR/NAME.i32 (rows of K int32 ids, -1 where fewer) and prints one JSON line a
search: {"name", "seconds", "faiss"}; index training is inside the IVF seconds.
"""

import json
import struct
import sys
import time

import faiss
import numpy as np


def read_vectors(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:8] == b"LOOMVEC1", "not a Loom vectors file"
    (hlen,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(raw[16 : 16 + hlen])
    v = np.frombuffer(raw, dtype=np.float32, offset=16 + hlen)
    return v.reshape(header["count"], header["dim"])


def without_self(ids, k):
    out = np.full((ids.shape[0], k), -1, dtype=np.int32)
    for q in range(ids.shape[0]):
        row = [int(i) for i in ids[q] if i != q and i >= 0][:k]
        out[q, : len(row)] = row
    return out


def main():
    path, k, threads, layouts, outdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    faiss.omp_set_num_threads(threads)
    v = np.ascontiguousarray(read_vectors(path))
    n, dim = v.shape

    t = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(v)
    _, ids = flat.search(v, k + 1)
    seconds = time.perf_counter() - t
    without_self(ids, k).tofile(f"{outdir}/exact.i32")
    print(json.dumps({"name": "exact", "seconds": seconds, "faiss": faiss.__version__}), flush=True)

    for layout in layouts.split(","):
        nlist, nprobe = (int(x) for x in layout.split(":"))
        t = time.perf_counter()
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.spherical = True
        index.cp.max_points_per_centroid = 32
        index.cp.seed = 1
        index.train(v)
        index.add(v)
        index.nprobe = nprobe
        _, ids = index.search(v, k + 1)
        seconds = time.perf_counter() - t
        name = f"ivf-{nlist}-{nprobe}"
        without_self(ids, k).tofile(f"{outdir}/{name}.i32")
        print(json.dumps({"name": name, "seconds": seconds, "faiss": faiss.__version__}), flush=True)


if __name__ == "__main__":
    main()
