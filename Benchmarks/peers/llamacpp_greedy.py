"""llama.cpp peer: greedy continuation of given prompt ids with a GGUF file, through llama-cpp-python.

Used to check that a GGUF file Loom exported loads in llama.cpp and continues prompts as Loom does
(Benchmarks/llamacpp-check.sh). Prints one line of comma-separated generated ids. llama-cpp-python is built as
../shared/LLM-SERVER.md says (CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"). Usage:
  python3 llamacpp_greedy.py FILE.gguf 2,818,5279 --tokens 32
"""
import argparse

from llama_cpp import Llama

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("ids")
p.add_argument("--tokens", type=int, default=32)
a = p.parse_args()
llm = Llama(model_path=a.model, n_ctx=1024, n_threads=2, n_batch=512, verbose=False)
ids = [int(x) for x in a.ids.split(",")]
out = []
# Greedy: the single most likely token each step, no repetition penalty (llama.cpp's sampler chain with top_k 1).
for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
    out.append(tok)
    if len(out) == a.tokens:
        break
print(",".join(str(t) for t in out))
