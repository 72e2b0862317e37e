#!/usr/bin/env python3
"""Seeds for the fuzz targets that read model files and configs (Python's standard library only; nothing is
committed as a binary file). Usage: python3 Fuzz/seeds.py OUT — writes OUT/merge, OUT/tokenizer, OUT/safetensors
and OUT/torch. The pipeline, template and mutation-rule targets are seeded by `make fuzz` with the project's own
files (examples/*.yaml, templates/, grammars/verilog-mutations.yaml)."""

import io
import json
import os
import pickle
import re
import struct
import sys
import types
import zipfile
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def merge_seeds(out):
    # The mergekit configs of docs/merging.md (the merge step's options are a pipeline's, skipped), and the
    # adapter_config.json `loom lora` writes (LoRA.save) plus a PEFT-style one with the adapter name and extras.
    doc = open(os.path.join(ROOT, "docs", "merging.md")).read()
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc, re.S)):
        if "merge_method" in block and not block.lstrip().startswith("steps"):
            write(f"{out}/doc-{i}.yaml", block)
    write(f"{out}/dare.yaml", "merge_method: dare_ties\nbase_model: base\nmodels:\n  - model: a\n    parameters:\n"
          "      weight: [{filter: self_attn, value: 0.3}, {value: 0.7}]\n      density: [0.2, 0.8]\n  - model: b\n"
          "    parameters: {weight: 0.5, density: 0.5}\nparameters: {rescale: true, int8_mask: false}\ndtype: float16\n")
    loom = OrderedDict([("alpha_pattern", {}), ("base_model_name_or_path", None), ("bias", "none"),
                        ("fan_in_fan_out", False), ("inference_mode", True), ("init_lora_weights", True),
                        ("lora_alpha", 16.0), ("lora_dropout", 0.0), ("modules_to_save", None), ("peft_type", "LORA"),
                        ("r", 8), ("rank_pattern", {}), ("target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"]),
                        ("task_type", "CAUSAL_LM"), ("use_dora", False), ("use_rslora", False)])
    write(f"{out}/adapter_config.json", json.dumps(loom, indent=2))
    peft = dict(loom, r=4, lora_alpha=8, lora_dropout=0.05, target_modules=["gate_proj", "up_proj", "down_proj"],
                base_model_name_or_path="meta-llama/Llama-3.2-1B", revision=None, layers_to_transform=None)
    write(f"{out}/adapter_config-peft.json", json.dumps(peft))


def tokenizer_seeds(out):
    # Byte-level BPE (GPT-2 style): the 256 byte symbols and a few merges.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    alphabet = [chr(c) for c in cs]
    vocab = {s: i for i, s in enumerate(alphabet)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("Ġ", "a")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    gpt2 = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": [[a, b] for a, b in merges]}}
    write(f"{out}/bytelevel.json", json.dumps(gpt2, ensure_ascii=False, indent=2))
    special = dict(gpt2, added_tokens=[
        {"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}])
    special["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    special["post_processor"] = {"type": "TemplateProcessing",
                                 "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                                 "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [len(vocab)], "tokens": ["<|endoftext|>"]}}}
    write(f"{out}/llama3-style.json", json.dumps(special, ensure_ascii=False))
    # SentencePiece-style BPE (Llama 2): metaspace, byte fallback, <unk>, merges as "a b" strings.
    sp = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["▁", "t", "h", "e", "▁t", "he", "▁the", "a"]
    llama = {"version": "1.0", "added_tokens": [
        {"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
        {"id": 1, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
        {"id": 2, "content": "</s>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                    {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "vocab": {s: i for i, s in enumerate(sp)},
                  "merges": ["▁ t", "h e", "▁t he"]}}
    write(f"{out}/sentencepiece-style.json", json.dumps(llama, ensure_ascii=False))


def safetensors_file(tensors, metadata=None):
    header, body = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def safetensors_seeds(out):
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    write(f"{out}/model.safetensors", safetensors_file({
        "model.embed_tokens.weight": ("F32", [2, 3], f32(1, 2, 3, 4, 5, 6)),
        "model.norm.weight": ("F16", [3], struct.pack("<3e", 1.0, 0.5, -2.0)),
        "lm_head.weight": ("BF16", [1, 2], b"\x80\x3f\x00\x40"),
        "step": ("I64", [], struct.pack("<q", 7)),
        "mask": ("BOOL", [4], b"\x01\x00\x01\x01"),
        "scale": ("F64", [1], struct.pack("<d", 0.25)),
        "empty": ("F32", [0, 4], b""),
    }, {"format": "pt"}))
    write(f"{out}/adapter_model.safetensors", safetensors_file({
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": ("F32", [1, 2], f32(0.1, 0.2)),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": ("F32", [2, 1], f32(0.0, 0.0)),
    }))


class _Storage:
    pass


def torch_seeds(out):
    # torch.save's zip layout without torch: a fake torch module so pickle names the same globals torch writes
    # (torch._utils._rebuild_tensor_v2, torch.FloatStorage, collections.OrderedDict), persistent ids for storages.
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):
        pass

    def _rebuild_parameter(*a):
        pass

    for f in (_rebuild_tensor_v2, _rebuild_parameter):
        f.__module__, f.__qualname__ = "torch._utils", f.__name__
        setattr(utils, f.__name__, f)
    storages = {}
    for name in ("FloatStorage", "HalfStorage", "LongStorage", "BFloat16Storage"):
        cls = type(name, (_Storage,), {"__module__": "torch"})
        setattr(torch, name, cls)
        storages[name] = cls
    torch._utils = utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils

    class Ref:
        def __init__(self, storage, key, numel):
            self.storage, self.key, self.numel = storage, key, numel

    class Tensor:
        def __init__(self, ref, offset, size, stride, param=False):
            self.args = (ref, offset, tuple(size), tuple(stride), False, OrderedDict())
            self.param = param

        def __reduce__(self):
            t = (_rebuild_tensor_v2, self.args)
            return (_rebuild_parameter, (t, True, OrderedDict())) if self.param else t

    # __reduce__ results of nested tuples need objects; wrap the tensor reduce in a class for the parameter case.
    class Param:
        def __init__(self, t):
            self.t = t

        def __reduce__(self):
            return (_rebuild_parameter, (self.t, True, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Ref):
                return ("storage", obj.storage, obj.key, "cpu", obj.numel)
            return None

    def save(path, state, data):
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(state)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", buf.getvalue())
            z.writestr("archive/byteorder", "little")
            for key, b in data.items():
                z.writestr(f"archive/data/{key}", b)
            z.writestr("archive/version", "3\n")

    os.makedirs(out, exist_ok=True)
    w = Ref(storages["FloatStorage"], "0", 6)
    state = OrderedDict()
    state["embed.weight"] = Tensor(w, 0, [2, 3], [3, 1])
    state["embed.weight_t"] = Tensor(w, 0, [3, 2], [1, 3])  # a transposed view of the same storage
    state["bias"] = Param(Tensor(Ref(storages["HalfStorage"], "1", 2), 0, [2], [1]))
    state["steps"] = Tensor(Ref(storages["LongStorage"], "2", 1), 0, [], [])
    state["bf"] = Tensor(Ref(storages["BFloat16Storage"], "3", 4), 1, [2], [2])
    save(f"{out}/pytorch_model.bin", state, {
        "0": struct.pack("<6f", 1, 2, 3, 4, 5, 6), "1": struct.pack("<2e", 0.5, -1.0),
        "2": struct.pack("<q", 3), "3": b"\x80\x3f\x00\x40\x40\x40\x80\x40"})
    small = OrderedDict([("w", Tensor(Ref(storages["FloatStorage"], "0", 1), 0, [1], [1]))])
    save(f"{out}/small.bin", small, {"0": struct.pack("<f", 2.0)})


if __name__ == "__main__":
    out = sys.argv[1]
    merge_seeds(f"{out}/merge")
    tokenizer_seeds(f"{out}/tokenizer")
    safetensors_seeds(f"{out}/safetensors")
    torch_seeds(f"{out}/torch")
