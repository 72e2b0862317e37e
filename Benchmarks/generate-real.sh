#!/usr/bin/env bash
# Generation on a real model (issue 22): Gemma 3 270M (base) writing QA pairs for 200 PubMed chunks, three ways:
#   llama    llama.cpp's server (llama-cpp-python) with the schema as response_format (json_object form)
#   builtin  Loom's builtin backend on the GGUF file, the few-shot prompt (a base model) and constrained decoding
#            from the same schema, no server
#   fewshot  llama.cpp's server on /v1/completions with the few-shot template and no schema (parse rate)
# and one Evol-Instruct round on 100 instructions (the QA questions of 100 other chunks) with the builtin Gemma.
# Then Benchmarks/peers/qa_summary.py prints, per run, the share of chunks with at least one schema-valid pair, the
# share of grounded answers and five examples.
#
#   Benchmarks/generate-real.sh WORK_DIR [RUNS]     RUNS: any of "llama builtin fewshot evolve" (default: all)
# Needs: .build/release/loom; the GGUF at .build/models/gemma-3-270m-q4_k_m.gguf (make reference-env); for llama and
# fewshot a llama.cpp server at LLAMA_URL (default http://127.0.0.1:8091/v1; ../shared/LLM-SERVER.md; start it with
# --n_threads 1 on a 2-core machine shared with other work: with 2 it slowed to 1.3 tokens/s under load).
set -euo pipefail
WORK=${1:?usage: generate-real.sh WORK_DIR [RUNS]}
RUNS=${2:-llama builtin fewshot evolve}
LOOM=${LOOM:-.build/release/loom}
GGUF=${GGUF:-.build/models/gemma-3-270m-q4_k_m.gguf}
LLAMA_URL=${LLAMA_URL:-http://127.0.0.1:8091/v1}
PUBMED=${LOOM_SHARED:-../shared}/corpora/pubmed/pubmed20n0014.xml.gz
CHUNKS=${CHUNKS:-200}
mkdir -p "$WORK"
TIME=(/usr/bin/time -f "  %C: elapsed %e s, user %U s, sys %S s")

# 200 chunks of 700-1600 characters (and 100 others for Evol-Instruct), drawn with a fixed seed.
if [ ! -f "$WORK/chunks.jsonl" ]; then
  "$LOOM" ingest pubmed "$PUBMED" -o "$WORK/pm" -q
  "$LOOM" chunk "$WORK/pm" -o "$WORK/chunks" --max-tokens 256 -q
  python3 - "$WORK" "$CHUNKS" <<'PY'
import glob, json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
recs = [json.loads(l) for f in sorted(glob.glob(work + "/chunks/part-*.jsonl")) for l in open(f)]
recs = [r for r in recs if 700 <= len(r["text"]) <= 1600]
random.seed(22)
sel = random.sample(recs, n + 100)
open(work + "/chunks.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in sel[:n]))
open(work + "/evol-chunks.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in sel[n:]))
PY
fi
COMMON=(--questions 2 --max-tokens 400 --temperature 0 --seed 1 --no-cache -q --force)
for run in $RUNS; do
  case $run in
    llama) "${TIME[@]}" "$LOOM" generate qa "$WORK/chunks.jsonl" -o "$WORK/qa-llama" --base-url "$LLAMA_URL" --model gemma \
             --structured json_object --concurrency 1 "${COMMON[@]}" ;;
    fewshot) "${TIME[@]}" "$LOOM" generate qa "$WORK/chunks.jsonl" -o "$WORK/qa-fewshot" --base-url "$LLAMA_URL" --model gemma \
             --endpoint completions --structured off --concurrency 1 "${COMMON[@]}" ;;
    builtin) "${TIME[@]}" "$LOOM" generate qa "$WORK/chunks.jsonl" -o "$WORK/qa-builtin" --backend builtin --model "$GGUF" \
             --endpoint completions --concurrency "${BUILTIN_CONCURRENCY:-8}" "${COMMON[@]}" ;;
    evolve)
      # 100 instructions: questions Gemma wrote in the llama run (one per chunk), else written now for 100 other chunks.
      if [ -f "$WORK/qa-llama/part-00000.jsonl" ]; then
        python3 - "$WORK" <<'PY'
import json, sys
work, seen, out = sys.argv[1], set(), []
for l in open(work + "/qa-llama/part-00000.jsonl"):
    r = json.loads(l)
    chunk = r["meta"]["provenance"]["ids"][0]
    if chunk not in seen and len(out) < 100:
        seen.add(chunk)
        out.append({"id": r["id"], "messages": r["messages"]})
open(work + "/evol-seed.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in out))
PY
        SEED="$WORK/evol-seed.jsonl"
      else
        "$LOOM" generate qa "$WORK/evol-chunks.jsonl" -o "$WORK/evol-seed" --backend builtin --model "$GGUF" --endpoint completions \
          --concurrency "${BUILTIN_CONCURRENCY:-8}" --questions 1 --max-tokens 200 --temperature 0 --seed 1 --no-cache -q --force
        SEED="$WORK/evol-seed"
      fi
      # Through the model's chat turns, then with the few-shot prompts of templates/evol/ (a base model).
      for endpoint in chat completions; do
        "${TIME[@]}" "$LOOM" generate evolve "$SEED" -o "$WORK/evolve-$endpoint" --backend builtin --model "$GGUF" \
          --endpoint $endpoint --concurrency "${BUILTIN_CONCURRENCY:-8}" --rounds 1 --max-tokens 120 --temperature 0.7 --seed 1 \
          --no-cache -q --force
        python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print('  evolve (' + sys.argv[2] + '):', m['counts'])" \
          "$WORK/evolve-$endpoint/manifest.json" $endpoint
      done ;;
    *) echo "unknown run '$run' (llama builtin fewshot evolve)"; exit 2 ;;
  esac
done
dirs=()
for run in llama builtin fewshot; do [ -f "$WORK/qa-$run/manifest.json" ] && dirs+=("$WORK/qa-$run"); done
[ ${#dirs[@]} -eq 0 ] || python3 "$(dirname "$0")/peers/qa_summary.py" "$WORK/chunks.jsonl" templates/qa/schema.json "${dirs[@]}"
