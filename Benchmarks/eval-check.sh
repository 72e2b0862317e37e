#!/usr/bin/env bash
# `loom eval` against lm-evaluation-harness (issue 23): the same items, the same model directory, the harness's HF
# backend (PyPI lm-eval 0.4.13, float32, CPU) with the items as local tasks.
#   - 200 multiple-choice items: cloze items (`loom tasks cloze`) over PubMed chunks; acc and acc_norm item by item;
#   - perplexity over 200 other chunks: per document and byte perplexity over the set (within 0.5%);
#   - multiple-choice items/s of both, evaluation only (model loading excluded on both sides), in the same run;
# for two models: the tiny fixture (llama3-tiny with a 512-token BPE trained here, since the fixture has no
# tokenizer) and Gemma 3 270M (.build/models/gemma-3-270m-hf, `make reference-env`).
#
#   Benchmarks/eval-check.sh WORK_DIR [MODELS]     MODELS: any of "tiny gemma" (default: both)
# Needs: .build/release/loom; a venv with lm-eval (made at .build/lm-eval-venv on first use from the local wheels).
set -euo pipefail
WORK=${1:?usage: eval-check.sh WORK_DIR [MODELS]}
MODELS=${2:-tiny gemma}
LOOM=${LOOM:-.build/release/loom}
SHARED=${LOOM_SHARED:-../shared}
PUBMED=$SHARED/corpora/pubmed/pubmed20n0014.xml.gz
VENV=${LM_EVAL_VENV:-.build/lm-eval-venv}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import lm_eval, accelerate" 2>/dev/null; then
  echo "making $VENV (lm-eval 0.4.13, CPU torch; once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'torch==2.13.0+cpu' transformers==5.25.0 tokenizers==0.23.3 safetensors==0.8.0 \
    'lm_eval==0.4.13' accelerate
fi

# 200 cloze items from one set of chunks, 200 other chunks for perplexity (700-1600 characters, a fixed seed).
if [ ! -f "$WORK/text.jsonl" ]; then
  "$LOOM" ingest pubmed "$PUBMED" -o "$WORK/pm" -q --require-abstract
  "$LOOM" chunk "$WORK/pm" -o "$WORK/chunks" --max-tokens 256 -q
  python3 - "$WORK" <<'PY'
import glob, json, random, sys
work = sys.argv[1]
recs = [json.loads(l) for f in sorted(glob.glob(work + "/chunks/part-*.jsonl")) for l in open(f)]
recs = [r for r in recs if 700 <= len(r["text"]) <= 1600]
random.seed(23)
sel = random.sample(recs, 600)
open(work + "/cloze-source.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in sel[:400]))
open(work + "/text.jsonl", "w").write("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in sel[400:]))
PY
  "$LOOM" tasks cloze "$WORK/cloze-source.jsonl" -o "$WORK/cloze" --max-items 200 --seed 23 -q
  cat "$WORK"/cloze/part-*.jsonl > "$WORK/mc.jsonl"
fi
echo "items: $(wc -l < "$WORK/mc.jsonl") multiple choice, $(wc -l < "$WORK/text.jsonl") perplexity documents"

for m in $MODELS; do
  case $m in
    tiny)
      dir=$WORK/tiny-model
      [ -f "$dir/model.safetensors" ] || "$VENV/bin/python" Benchmarks/peers/make_tiny_eval_model.py "$SHARED/fixtures/llama3-tiny" "$WORK/text.jsonl" "$dir" ;;
    gemma) dir=${GEMMA_HF:-.build/models/gemma-3-270m-hf} ;;
    *) echo "unknown model $m (tiny, gemma)"; exit 2 ;;
  esac
  echo "== $m: $dir"
  "$LOOM" eval "$dir" "$WORK/mc.jsonl" -o "$WORK/$m-mc" -q --force --jobs "$THREADS"
  "$LOOM" eval "$dir" "$WORK/text.jsonl" -o "$WORK/$m-ppl" -q --force --jobs "$THREADS"
  "$VENV/bin/python" Benchmarks/peers/lm_eval_check.py "$dir" "$WORK/mc.jsonl" "$WORK/text.jsonl" "$WORK/$m-mc" "$WORK/$m-ppl" \
    --threads "$THREADS" 2> "$WORK/$m-lm-eval.log" | tee "$WORK/$m-summary.txt"
done
