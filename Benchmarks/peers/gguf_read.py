# Reads a GGUF file with the gguf package (gguf-py) and writes what it sees, for Loom's tests to compare with its own
# reader: OUT.json (version, alignment, data offset, every key with its type and value or array summary, every tensor
# with its type, ne and offset) and OUT.safetensors (every tensor dequantized by gguf.quants.dequantize, float32).
#   python3 gguf_read.py FILE.gguf OUT
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize
from safetensors.numpy import save_file

path, out = sys.argv[1], sys.argv[2]
r = GGUFReader(path)


def scalar(field, part):
    v = field.parts[part]
    if field.types[-1] == GGUFValueType.STRING:
        return bytes(v).decode("utf-8")
    x = v[0].item()
    return bool(x) if field.types[-1] == GGUFValueType.BOOL else x


kv = []
for key, f in r.fields.items():
    if key.startswith("GGUF."):
        continue
    entry = {"key": key, "type": f.types[0].name}
    if f.types[0] == GGUFValueType.ARRAY:
        entry["elem_type"] = f.types[-1].name
        entry["count"] = len(f.data)
        entry["values"] = [scalar(f, i) for i in f.data] if len(f.data) <= 64 and len(f.types) == 2 else None
    else:
        entry["value"] = scalar(f, f.data[0])
    kv.append(entry)
tensors = [
    {"name": t.name, "type": t.tensor_type.name, "ne": [int(n) for n in t.shape], "offset": int(t.data_offset) - int(r.data_offset)}
    for t in r.tensors
]
json.dump({"alignment": r.alignment, "data_offset": int(r.data_offset), "kv": kv, "tensors": tensors}, open(out + ".json", "w"))
save_file({t.name: np.ascontiguousarray(dequantize(t.data, t.tensor_type).astype(np.float32)).reshape(-1) for t in r.tensors}, out + ".safetensors")
