#!/usr/bin/env python3
"""Peer parsers for `loom-bench verilog`: pyverilog 1.3.0 and pyslang, on the same files.

    verilog_bench.py check FILE...            JSON: which files each peer parses without errors
    verilog_bench.py time --runs N FILE...    JSON: seconds per pass over all files (wall and thread CPU, best and
                                              median)

pyverilog: one VerilogParser built once and reused for every file (its documented parse() rebuilds the PLY tables
on every call). Its own preprocessing shells out to `iverilog -E`; it is timed separately ("pyverilog_pp": one
VerilogPreprocessor run per file, then the reused parser) and without it ("pyverilog": the parser on text that was
preprocessed beforehand). pyslang: SyntaxTree.fromText per file (its preprocessor included).
Install: pip install pyverilog==1.3.0 pyslang
"""
import json
import os
import statistics
import sys
import tempfile
import time

from pyslang.syntax import SyntaxTree
from pyverilog.vparser.parser import VerilogParser
from pyverilog.vparser.preprocessor import VerilogPreprocessor

TMP = tempfile.mkdtemp(prefix="loom-bench-pyverilog-")


def pyverilog_parser():
    return VerilogParser(outputdir=TMP, debug=False)


def preprocess(path):
    out = os.path.join(TMP, "pp.out")
    VerilogPreprocessor([path], out, include=[os.path.dirname(path)]).preprocess()
    with open(out) as f:
        text = f.read()
    os.remove(out)
    return text


def slang_ok(text):
    tree = SyntaxTree.fromText(text)
    return len(tree.diagnostics) == 0


def check(files):
    parser = pyverilog_parser()
    res = {}
    for f in files:
        with open(f) as fh:
            text = fh.read()
        try:
            parser.parse(preprocess(f), debug=0)
            pv = True
        except Exception:  # pyverilog raises ParseError (and others) on what it cannot parse
            pv = False
        res[f] = {"pyverilog": pv, "pyslang": slang_ok(text)}
    print(json.dumps(res))


def time_all(files, runs):
    texts = []
    for f in files:
        with open(f) as fh:
            texts.append(fh.read())
    pre = [preprocess(f) for f in files]
    parser = pyverilog_parser()
    out = {"files": len(files), "bytes": sum(len(t.encode()) for t in texts)}
    for name in ["pyslang", "pyverilog", "pyverilog_pp"]:
        times, cpu = [], []
        for _ in range(runs if name != "pyverilog_pp" else max(1, min(runs, 3))):
            t, c = time.perf_counter(), time.thread_time()
            if name == "pyslang":
                for s in texts:
                    SyntaxTree.fromText(s)
            elif name == "pyverilog":
                for s in pre:
                    parser.parse(s, debug=0)
            else:
                for f in files:
                    parser.parse(preprocess(f), debug=0)
            times.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        out[name] = {
            "best": min(times), "median": statistics.median(times), "runs": times,
            # CPU time of this thread: what the machine's other load does not change (the iverilog children of
            # pyverilog_pp are not in it).
            "cpu_best": min(cpu), "cpu_median": statistics.median(cpu),
        }
    print(json.dumps(out))


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    cmd = args.pop(0)
    runs = 5
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i : i + 2]
    if cmd == "check":
        check(args)
    elif cmd == "time":
        time_all(args, runs)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
