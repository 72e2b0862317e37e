# The peers of `loom-bench gguf`: load a GGUF file to float32 as
#   transformers: AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, dtype=float32) (its GGUF loader
#                 dequantizes every tensor and builds the model), or
#   gguf:         gguf-py's GGUFReader and gguf.quants.dequantize (numpy) of every tensor.
#   python3 gguf_bench.py transformers|gguf FILE.gguf THREADS
import os
import sys

mode, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if threads > 0:
    for k in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        os.environ[k] = str(threads)

import numpy as np  # noqa: E402

if mode == "transformers":
    import torch
    from transformers import AutoModelForCausalLM

    if threads > 0:
        torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), dtype=torch.float32
    )
    n = sum(p.numel() for p in model.parameters())
else:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(path)
    n = 0
    for t in r.tensors:
        n += np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).size
print(n)
