"""The peer for `loom-bench pubmed`: pubmed_parser.parse_medline_xml over one file, every article consumed.

Usage: python3 pubmed_parser_bench.py FILE.xml.gz COUNT_OUT
Options are the ones the corpus reference was made with (year_info_only=False, nlm_category=True).
"""
import sys

import pubmed_parser

n = 0
for _article in pubmed_parser.parse_medline_xml(sys.argv[1], year_info_only=False, nlm_category=True):
    n += 1
with open(sys.argv[2], "w") as f:
    f.write(f"{n}\n")
