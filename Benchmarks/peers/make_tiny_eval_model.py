"""A tiny model directory both transformers and Loom open, for `loom eval`'s agreement check (issue 23): the
llama3-tiny fixture's config and weights ($LOOM_SHARED/fixtures/llama3-tiny, vocabulary 512, 256 positions) and a
byte-level BPE tokenizer of 512 tokens trained here with tokenizers on the given text (no start token is added, so
the harness's prefix token is <|endoftext|>, as Loom's).

    python make_tiny_eval_model.py FIXTURE_DIR TEXT.jsonl OUT_DIR
"""
import json
import os
import shutil
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

fixture, text, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
cfg = json.load(open(os.path.join(fixture, "config.json")))
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=cfg["vocab_size"], special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
texts = [json.loads(l)["text"] for l in open(text)]
tok.train_from_iterator(texts, trainer)
assert tok.get_vocab_size() <= cfg["vocab_size"], tok.get_vocab_size()
tok.save(os.path.join(out, "tokenizer.json"))
json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "model_max_length": cfg["max_position_embeddings"]},
          open(os.path.join(out, "tokenizer_config.json"), "w"))
cfg["bos_token_id"] = None
cfg["eos_token_id"] = 0
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
shutil.copy(os.path.join(fixture, "model.safetensors"), os.path.join(out, "model.safetensors"))
print(out)
