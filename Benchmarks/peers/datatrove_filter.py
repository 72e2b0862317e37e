"""datatrove's quality filters on the records `loom filter` judged, for issue 27's agreement and speed check.

    python datatrove_filter.py RECORDS.jsonl OUT.json [--time-only]

RECORDS: {"id", "text"} per line. For each rule set (GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter,
FineWebQualityFilter, default parameters, English, one thread), every record's decision and reason, each rule set
on a fresh copy of the record (C4 rewrites text). Then the four as one pipeline in that order (a dropped record
goes no further, C4's kept lines go on to FineWeb), timed with process CPU time, JSON reading excluded. OUT gets
{"decisions": {rule: {id: reason-or-null}}, "pipeline_cpu_s": s, "pipeline_kept": n, "records": n}.
"""

import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

RULES = [
    ("gopher-repetition", GopherRepetitionFilter),
    ("gopher-quality", GopherQualityFilter),
    ("c4", C4QualityFilter),
    ("fineweb", FineWebQualityFilter),
]


def verdict(f, doc):
    r = f.filter(doc)
    if r is True:
        return None
    if isinstance(r, tuple):
        return r[1] if len(r) > 1 else "dropped"
    return "dropped" if not r else None


def main():
    path, out = sys.argv[1], sys.argv[2]
    time_only = "--time-only" in sys.argv
    recs = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    result = {"records": len(recs), "decisions": {}}
    filters = {name: cls() for name, cls in RULES}
    # Warm up spaCy's tokenizer (loading is not filtering).
    filters["gopher-quality"].filter(Document(text="warm up the tokenizer.", id="0"))
    if not time_only:
        for name, f in filters.items():
            d = {}
            for r in recs:
                d[str(r["id"])] = verdict(f, Document(text=r["text"], id=str(r["id"])))
            result["decisions"][name] = d
    docs = [Document(text=r["text"], id=str(r["id"])) for r in recs]
    t0 = time.process_time()
    kept = 0
    for doc in docs:
        for name, f in filters.items():
            if verdict(f, doc) is not None:
                break
        else:
            kept += 1
    result["pipeline_cpu_s"] = time.process_time() - t0
    result["pipeline_kept"] = kept
    json.dump(result, open(out, "w"))
    print(f"datatrove: {len(recs)} records, pipeline kept {kept}, {result['pipeline_cpu_s']:.2f} CPU s")


if __name__ == "__main__":
    main()
