"""Reference check for Loom's reading of SentencePiece-style (Llama-2 / Mistral) tokenizer.json files.

usage: spm_tokenizer_check.py CORPUS STRINGS.json OUT_TOKENIZER.json VOCAB_SIZE [LAYOUT]
Builds with Hugging Face tokenizers a tokenizer laid out as Llama-2's: BPE with byte_fallback and fuse_unk, <unk>
<s> </s> then the 256 <0xXX> byte tokens as ordinary vocabulary, the normalizer Prepend("▁") + Replace(" ", "▁"),
no pre-tokenizer, the decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(" ", 1, 0) and a TemplateProcessing
that adds <s>. LAYOUT `metaspace` or `metaspace-nosplit` instead has no normalizer, a Metaspace pre-tokenizer
(prepend_scheme "first", split true or false) and the decoder Metaspace + ByteFallback + Fuse (transformers'
conversions with legacy=False). Trains it on CORPUS, writes OUT_TOKENIZER.json, and prints JSON: for each string of STRINGS.json its
ids without and with special tokens, and the decoded text (special tokens kept, as Loom's decode does).
"""

import json
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers


def main():
    corpus, strings_path, out, vocab_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    layout = sys.argv[5] if len(sys.argv) > 5 else "llama2"
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if layout == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        tok.decoder = decoders.Sequence(
            [decoders.Metaspace(replacement="▁", prepend_scheme="first"), decoders.ByteFallback(), decoders.Fuse()]
        )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False, limit_alphabet=200
    )
    tok.train([corpus], trainer)
    j = json.loads(tok.to_str())
    # The byte tokens go in as ordinary vocabulary right after the specials, as in Llama-2's file.
    old = sorted(j["model"]["vocab"].items(), key=lambda x: x[1])
    vocab = {t: i for t, i in old if i < 3}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    vocab.update({t: i + 256 for t, i in old if i >= 3})
    j["model"]["vocab"] = vocab
    if layout == "metaspace-nosplit":
        j["pre_tokenizer"]["split"] = False
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "<s>", "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    with open(out, "w", encoding="utf-8") as f:
        f.write(json.dumps(j, ensure_ascii=False))
    t = Tokenizer.from_file(out)
    strings = json.load(open(strings_path, encoding="utf-8"))
    rows = []
    for s in strings:
        plain = t.encode(s, add_special_tokens=False).ids
        rows.append({"ids": plain, "with_special": t.encode(s).ids, "decoded": t.decode(plain, skip_special_tokens=False)})
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
