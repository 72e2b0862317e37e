"""Checks a tokenizer.json written by Loom with Hugging Face tokenizers (used by LoomTokenizerTests when Python with
tokenizers is installed; `pip install tokenizers==0.23.3`).

Usage: python3 tokenizer_check.py TOKENIZER.json STRINGS.json [--train CORPUS --vocab-size N --min-frequency N
                                  --pre gpt2|llama3 --special TOKEN ...]

Loads TOKENIZER.json with tokenizers, encodes every string of STRINGS.json (a JSON list) with
add_special_tokens=False and decodes the ids back. With --train it also trains tokenizers' own BpeTrainer on CORPUS
with the same settings (a .jsonl CORPUS is read one record's text per sequence; the fixture's: initial_alphabet = ByteLevel.alphabet(), the pre-tokeniser of --pre,
ByteLevel post-processor and decoder) and reports whether its vocabulary and merges equal the file's. Prints one
JSON object: {"ids": [[...], ...], "decoded": [...], "same_as_trained": true|false|null}.
"""
import json
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train(corpus, vocab_size, min_frequency, pre, special):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    if pre == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    if corpus.endswith(".jsonl"):
        # One sequence per record's text, as Loom reads JSON Lines.
        def texts():
            with open(corpus, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        t = json.loads(line).get("text")
                        if isinstance(t, str):
                            yield t
        tok.train_from_iterator(texts(), trainer)
    else:
        tok.train([corpus], trainer)
    return tok


def main():
    args = sys.argv[1:]
    tok_path, strings_path = args[0], args[1]
    rest = args[2:]
    opts, special = {}, []
    i = 0
    while i < len(rest):
        if rest[i] == "--special":
            special.append(rest[i + 1])
        else:
            opts[rest[i]] = rest[i + 1]
        i += 2
    tok = Tokenizer.from_file(tok_path)
    strings = json.load(open(strings_path, encoding="utf-8"))
    ids = [tok.encode(s, add_special_tokens=False).ids for s in strings]
    decoded = [tok.decode(x, skip_special_tokens=False) for x in ids]
    same = None
    if "--train" in opts:
        hf = train(opts["--train"], int(opts["--vocab-size"]), int(opts["--min-frequency"]), opts.get("--pre", "gpt2"),
                   special)
        a = json.loads(hf.to_str())["model"]
        b = json.loads(tok.to_str())["model"]
        same = a["vocab"] == b["vocab"] and a["merges"] == b["merges"]
    print(json.dumps({"ids": ids, "decoded": decoded, "same_as_trained": same}))


if __name__ == "__main__":
    main()
