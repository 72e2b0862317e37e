#!/usr/bin/env bash
# `loom filter` against datatrove 0.10.1 (issue 27): the keep/drop decision of each rule set (gopher-repetition,
# gopher-quality, c4, fineweb; default parameters) record by record, and the speed of the four as one pipeline, one
# thread each, in the same run, on
#   - the first 5,000 documents with an abstract of the shared PubMed file (title + abstract, `loom ingest pubmed`);
#   - every page of the shared PDF corpus (`loom ingest pdf`, OCR for the scanned pages, cut at meta.page_offsets).
# Loom's time is the whole `loom filter` process (reading and writing JSON Lines included, CPU seconds); datatrove's
# is its filter calls on documents already in memory (process CPU seconds, spaCy's tokenizer loaded beforehand).
#
#   Benchmarks/filter-check.sh WORK_DIR
# Needs: .build/release/loom; a venv with datatrove and spaCy (made at .build/datatrove-venv on first use).
set -euo pipefail
WORK=${1:?usage: filter-check.sh WORK_DIR}
LOOM=${LOOM:-.build/release/loom}
SHARED=${LOOM_SHARED:-../shared}
VENV=${DATATROVE_VENV:-.build/datatrove-venv}
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import datatrove, spacy" 2>/dev/null; then
  echo "making $VENV (datatrove 0.10.1, spaCy; once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet datatrove==0.10.1 spacy==3.8.18
fi

if [ ! -f "$WORK/pubmed.jsonl" ]; then
  "$LOOM" ingest pubmed "$SHARED/corpora/pubmed/pubmed20n0014.xml.gz" -o "$WORK/pm" -q --require-abstract
  cat "$WORK"/pm/part-*.jsonl | head -5000 | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    print(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False))' > "$WORK/pubmed.jsonl"
fi
if [ ! -f "$WORK/pages.jsonl" ]; then
  "$LOOM" ingest pdf "$SHARED/corpora/pdf/dev" -o "$WORK/pdf" -q --ocr auto --languages eng,kor
  cat "$WORK"/pdf/part-*.jsonl | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    t = r["text"]
    for i, (a, b) in enumerate(r["meta"]["page_offsets"]):
        if t[a:b].strip():
            print(json.dumps({"id": "%s#p%d" % (r["id"], i + 1), "text": t[a:b]}, ensure_ascii=False))' > "$WORK/pages.jsonl"
fi

for set in pubmed pages; do
  n=$(wc -l < "$WORK/$set.jsonl")
  echo "== $set: $n records"
  for rule in gopher-repetition gopher-quality c4 fineweb; do
    "$LOOM" filter "$WORK/$set.jsonl" -o "$WORK/$set-$rule" --rules "$rule" --set c4.remove_lines=false --set gopher-quality.language=en --jobs 1 -q --force
  done
  "$VENV/bin/python" Benchmarks/peers/datatrove_filter.py "$WORK/$set.jsonl" "$WORK/$set-datatrove.json"
  /usr/bin/time -f "%U %S" -o "$WORK/$set-loom-time.txt" \
    "$LOOM" filter "$WORK/$set.jsonl" -o "$WORK/$set-all" --rules gopher-repetition,gopher-quality,c4,fineweb --set gopher-quality.language=en --jobs 1 -q --force
  python3 - "$WORK" "$set" <<'PY'
import json, sys
work, name = sys.argv[1], sys.argv[2]
dt = json.load(open(f"{work}/{name}-datatrove.json"))
ids = [str(json.loads(l)["id"]) for l in open(f"{work}/{name}.jsonl")]
texts = {str(json.loads(l)["id"]): json.loads(l)["text"] for l in open(f"{work}/{name}.jsonl")}
out = []
for rule in ["gopher-repetition", "gopher-quality", "c4", "fineweb"]:
    rej = {}
    try:
        for l in open(f"{work}/{name}-{rule}/rejects.jsonl"):
            r = json.loads(l)
            rej[str(r.get("id"))] = r["reason"]
    except FileNotFoundError:
        pass
    d = dt["decisions"][rule]
    agree = sum((i in rej) == (d[i] is not None) for i in ids)
    dis = [i for i in ids if (i in rej) != (d[i] is not None)]
    print(f"{rule:18s} agree {agree}/{len(ids)} = {agree/len(ids):.4f}   loom dropped {len(rej)}, datatrove dropped {sum(v is not None for v in d.values())}")
    for i in dis:
        out.append({"set": name, "rule": rule, "id": i, "loom": rej.get(i), "datatrove": d[i], "text": texts[i][:400]})
with open(f"{work}/{name}-disagreements.jsonl", "w") as f:
    for o in out:
        f.write(json.dumps(o, ensure_ascii=False) + "\n")
u, s = map(float, open(f"{work}/{name}-loom-time.txt").read().split()[-2:])
m = json.load(open(f"{work}/{name}-all/manifest.json"))
kept = m["counts"]["kept"]
print(f"pipeline (4 rule sets, 1 thread): loom {u+s:.2f} CPU s (kept {kept}), datatrove {dt['pipeline_cpu_s']:.2f} CPU s (kept {dt['pipeline_kept']}): {dt['pipeline_cpu_s']/(u+s):.1f}x")
print(f"disagreements: {work}/{name}-disagreements.jsonl ({len(out)})")
PY
done
