#!/usr/bin/env bash
# A model Loom exports to GGUF loads in llama.cpp and continues prompts greedily as Loom does (issue 21).
#   Benchmarks/llamacpp-check.sh MODEL (a .gguf file or Hugging Face directory) [PYTHON with llama-cpp-python]
# Exports MODEL as f16 and q8_0 with `loom model export`, then for three prompts compares 32 greedy tokens from
# llama.cpp (Benchmarks/peers/llamacpp_greedy.py) with Loom's on the same exported file (`loom generate text`),
# (32 tokens, none of them end of text). Prints a line a prompt and type, and the agreement.
set -euo pipefail
MODEL=${1:?usage: llamacpp-check.sh MODEL [PYTHON]}
PY=${2:-python3}
LOOM=${LOOM:-.build/release/loom}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PROMPTS=("2,818,5279,529,7001,563" "2,14946,3324,496,990,236764,528,496,1944,9744" "2,105,2364,107,6974,496,2822,27355,1003,506,12461,236761,106,107,105,4368,107")
# LLAMACPP_PROMPTS="2,10,20;2,30,40" gives others (a model with a small vocabulary, such as the tiny fixtures).
if [ -n "${LLAMACPP_PROMPTS:-}" ]; then IFS=';' read -r -a PROMPTS <<< "$LLAMACPP_PROMPTS"; fi
for type in f16 q8_0; do
  "$LOOM" model export "$MODEL" -o "$OUT/model-$type.gguf" --type "$type" -q
  same=0
  for ids in "${PROMPTS[@]}"; do
    # (none of these prompts reaches end of text within 32 tokens, so Loom's stop there does not shorten it)
    loom_ids=$(LOOM_CACHE="$OUT/cache" "$LOOM" generate text "$OUT/model-$type.gguf" --ids "$ids" --max-tokens 32 --output ids | tail -n 1 | tr ' ' ',')
    cpp_ids=$("$PY" "$(dirname "$0")/peers/llamacpp_greedy.py" "$OUT/model-$type.gguf" "$ids" --tokens 32)
    if [ "$loom_ids" = "$cpp_ids" ]; then same=$((same + 1)); verdict=same; else verdict=differ; fi
    echo "$type prompt ${ids:0:20}...: $verdict"
    [ "$verdict" = same ] || { echo "  loom:      $loom_ids"; echo "  llama.cpp: $cpp_ids"; }
  done
  echo "$type: $same of ${#PROMPTS[@]} prompts give the same 32 greedy tokens"
done
