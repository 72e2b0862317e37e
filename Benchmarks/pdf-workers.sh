#!/bin/sh
# PDF ingest with pages read in worker processes (the default: a crash in poppler or tesseract costs one file) against
# threads of one process (LOOM_PDF_WORKERS=threads), same files, interleaved runs; wall and CPU seconds of each.
#   Benchmarks/pdf-workers.sh [LOOM] [PDF_DIR] [RUNS]
set -eu
LOOM=${1:-.build/release/loom}
DIR=${2:-${LOOM_SHARED:-../shared}/corpora/pdf/dev}
RUNS=${3:-5}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for jobs in 1 2; do
  for i in $(seq "$RUNS"); do
    for mode in workers threads; do
      if [ $mode = threads ]; then export LOOM_PDF_WORKERS=threads; else unset LOOM_PDF_WORKERS; fi
      /usr/bin/time -f "$mode jobs=$jobs run=$i %e wall %U user %S sys" "$LOOM" ingest pdf "$DIR" -o "$OUT/$mode" \
        --force -q --jobs $jobs --ocr never 2>&1 | tail -n 1
    done
  done
done | awk '{ key = $1 " " $2; wall[key] = wall[key] " " $4; cpu[key] = cpu[key] " " ($6 + $8); print }
  END { for (k in wall) print "summary " k ": wall" wall[k] " | cpu" cpu[k] }'
cmp "$OUT/workers/part-00000.jsonl" "$OUT/threads/part-00000.jsonl" && echo "same documents from both"
