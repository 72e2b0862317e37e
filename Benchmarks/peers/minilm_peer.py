"""sentence-transformers' encode on the same sentences loom-bench minilm embeds, for the throughput comparison.

usage: python3 minilm_peer.py MODEL_DIR SENTENCES.json THREADS OUT.f32 [RUNS]

Loads the model once (not timed), encodes once to warm up, then RUNS times (default 3); prints one JSON line with
each run's seconds, and writes the last run's embeddings (float32, row-major) to OUT.f32 so loom-bench can compare
vectors too.
"""
import json
import sys
import time

import torch

model_dir, sentences_path, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer  # noqa: E402

sentences = json.load(open(sentences_path))
model = SentenceTransformer(model_dir, device="cpu")
model.encode(sentences[:64], batch_size=32)
seconds = []
for _ in range(runs):
    t = time.perf_counter()
    with torch.inference_mode():
        e = model.encode(sentences, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    seconds.append(time.perf_counter() - t)
e.astype("float32").tofile(out)
print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "sentences": len(sentences), "dim": int(e.shape[1])}))
