# Writes the GGUF fuzzer's seed files into the directory given (gguf-py; run with the reference venv's python).
import sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

out = sys.argv[1]


def write(name, arch, fill):
    w = gguf.GGUFWriter(f"{out}/{name}", arch)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def every_type(w):
    w.add_uint32("x.u32", 7)
    w.add_int8("x.i8", -3)
    w.add_float64("x.f64", 0.5)
    w.add_bool("x.b", True)
    w.add_array("x.arr", [[1, 2], ["a"], [True]])
    w.add_array("x.s", ["<pad>", "\u2581the"])
    w.add_tensor("w", np.arange(8, dtype=np.float32).reshape(2, 4))
    w.add_tensor("h", np.arange(4, dtype=np.float16))
    rng = np.random.default_rng(0)
    for t in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.BF16]:
        size = gguf.GGML_QUANT_SIZES[t][1]
        raw = rng.integers(0, 256, size=(1, size), dtype=np.uint8)
        raw[..., 1::2] &= 0x3F  # keep f16 scales finite
        w.add_tensor("t" + t.name, raw, raw_dtype=t)


def aligned(w):
    w.add_uint32("general.alignment", 64)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_tensor("e", np.ones((3, 32), dtype=np.float32))


write("seed-all.gguf", "llama", every_type)
write("seed-align.gguf", "qwen2", aligned)
