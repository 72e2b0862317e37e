#!/usr/bin/env python3
"""Builds the wider Verilog development corpora of issue 26 (item 2) outside the repository, with the same manifest
as the shared corpus ($LOOM_SHARED/corpora/verilog/dev/MANIFEST.tsv): which tools accept each file alone and with
the other directories of its group.

    python3 Benchmarks/verilog-corpora.py [--out .build/verilog-corpora] [--jobs 2]

Sources (none of them used by the shared corpus):
  - PyPI sdists of CPU cores, pinned: marocchino, VexRiscv (generated), lm32, mor1kx, PicoRV32, Rocket (generated
    by Chisel/FIRRTL; one of its twelve near-identical 8-10 MB SoC configurations is kept), fetched with `pip download --no-binary :all:` (the machine's pip index or mirror);
  - Debian's yosys cell and techmap libraries (/usr/share/yosys/**.v): escaped names like `\\$add`, attributes,
    specify blocks, `_TECHMAP_` parameters.

Layout: OUT/wild/<group>/<path inside the package> and OUT/wild/MANIFEST.tsv, with paths relative to OUT (as the
shared manifest's are relative to its `verilog/` folder), so `VerilogCorpus.load(root: "OUT/wild")` reads it.
Columns: path bytes iverilog_ok yosys_ok iverilog_ctx_ok yosys_ctx_ok source. `iverilog_ok`: `iverilog -g2005 -t null
FILE` exits 0; `yosys_ok`: `yosys -q -p 'read_verilog FILE'` exits 0; the `_ctx_` columns add `-I D -y D`
(iverilog) or `-I D` (yosys) for every directory of the group holding a .v file. Each tool run is limited to 60 s.

The corpus test reads it with LOOM_VERILOG_CORPORA=OUT/wild:
    LOOM_VERILOG_CORPORA=$PWD/.build/verilog-corpora/wild swift test --filter VerilogCorpusTests
"""
import argparse
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

SDISTS = [
    ("marocchino", "pythondata-cpu-marocchino==0.0.post209"),
    ("vexriscv", "pythondata-cpu-vexriscv==1.0.1.post407"),
    ("lm32", "pythondata-cpu-lm32==0.0.post199"),
    ("mor1kx", "pythondata-cpu-mor1kx==5.2.post151"),
    ("picorv32", "pythondata-cpu-picorv32==1.0.post218"),
    ("rocket", "pythondata-cpu-rocket==0.0.post7146"),
]
# Rocket's sdist holds twelve Chisel-generated SoC configurations of 8-10 MB each that differ in a few parameters;
# one of them (LitexConfig, with its SRAM models) stands for generated netlists, with the hand-written vsrc/.
KEEP = {"rocket": lambda rel: "/generated-src/" not in rel or ".LitexConfig." in rel}
YOSYS_SHARE = "/usr/share/yosys"


def fetch_sdist(spec, cache):
    os.makedirs(cache, exist_ok=True)
    name = spec.split("==")[0]
    have = [f for f in os.listdir(cache) if f.replace("_", "-").startswith(name + "-") and f.endswith(".tar.gz")]
    if have:
        return os.path.join(cache, have[0])
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", cache, spec],
                   check=True)
    have = [f for f in os.listdir(cache) if f.replace("_", "-").startswith(name + "-") and f.endswith(".tar.gz")]
    return os.path.join(cache, have[0])


def extract_verilog(tar_path, dest, keep=None):
    """Every .v member (and include file), under dest with the sdist's top folder removed. Returns the count."""
    n = 0
    with tarfile.open(tar_path) as t:
        for m in t.getmembers():
            # .v files and the include files they name (.vh, .svh); only .v files are listed in the manifest.
            if not m.isfile() or not m.name.endswith((".v", ".vh", ".svh")):
                continue
            rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
            if rel.startswith("/") or ".." in rel.split("/"):
                continue
            if keep is not None and not keep(rel):
                continue
            out = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with t.extractfile(m) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
    return n


def run(cmd, cwd):
    try:
        r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        return r.returncode == 0
    except subprocess.TimeoutExpired:
        return False


def check(path, dirs):
    scratch = tempfile.mkdtemp(prefix="loom-vcorp-")
    try:
        iv = run(["iverilog", "-g2005", "-t", "null", "-o", os.devnull, path], scratch)
        ys = run(["yosys", "-q", "-p", "read_verilog " + shlex_quote(path)], scratch)
        ivc_args = ["iverilog", "-g2005", "-t", "null", "-o", os.devnull]
        ysc = "read_verilog"
        for d in dirs:
            ivc_args += ["-I", d, "-y", d]
            ysc += " -I " + shlex_quote(d)
        ivc = run(ivc_args + [path], scratch)
        ysc_ok = run(["yosys", "-q", "-p", ysc + " " + shlex_quote(path)], scratch)
        return iv, ys, ivc, ysc_ok
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".build/verilog-corpora")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    wild = os.path.join(out, "wild")
    shutil.rmtree(wild, ignore_errors=True)
    os.makedirs(wild)
    sources = {}
    for group, spec in SDISTS:
        tar = fetch_sdist(spec, os.path.join(out, "sdists"))
        n = extract_verilog(tar, os.path.join(wild, group), KEEP.get(group))
        sources[group] = "pypi:" + spec
        print(f"{group}: {n} .v files from {os.path.basename(tar)}", file=sys.stderr)
    if os.path.isdir(YOSYS_SHARE):
        ver = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "yosys"], capture_output=True, text=True).stdout
        n = 0
        for f in sorted(glob.glob(YOSYS_SHARE + "/**/*.v", recursive=True)):
            rel = os.path.relpath(f, YOSYS_SHARE)
            dst = os.path.join(wild, "yosys-techlibs", rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(f, dst)
            n += 1
        sources["yosys-techlibs"] = f"apt:yosys {ver} {YOSYS_SHARE}"
        print(f"yosys-techlibs: {n} .v files", file=sys.stderr)
    files = sorted(glob.glob(wild + "/**/*.v", recursive=True))
    group_of = {f: os.path.relpath(f, wild).split("/")[0] for f in files}
    dirs = {}
    for f in files:
        dirs.setdefault(group_of[f], set()).add(os.path.dirname(f))
    rows = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        futs = {ex.submit(check, f, sorted(dirs[group_of[f]])): f for f in files}
        for i, fut in enumerate(concurrent.futures.as_completed(futs)):
            f = futs[fut]
            rows.append((f, fut.result()))
            if (i + 1) % 50 == 0:
                print(f"checked {i + 1}/{len(files)}", file=sys.stderr)
    rows.sort()
    with open(os.path.join(wild, "MANIFEST.tsv"), "w") as m:
        m.write("path\tbytes\tiverilog_ok\tyosys_ok\tiverilog_ctx_ok\tyosys_ctx_ok\tsource\n")
        for f, (iv, ys, ivc, ysc) in rows:
            rel = os.path.relpath(f, out)
            m.write(f"{rel}\t{os.path.getsize(f)}\t{int(iv)}\t{int(ys)}\t{int(ivc)}\t{int(ysc)}\t{sources[group_of[f]]}\n")
    by_group = {}
    for f, (iv, ys, ivc, ysc) in rows:
        g = by_group.setdefault(group_of[f], [0, 0, 0, 0, 0])
        g[0] += 1
        g[1] += iv
        g[2] += ys
        g[3] += ivc
        g[4] += ysc
    print("group\tfiles\tiverilog_ok\tyosys_ok\tiverilog_ctx_ok\tyosys_ctx_ok")
    for g, c in sorted(by_group.items()):
        print(g + "\t" + "\t".join(map(str, c)))
    print(f"total\t{len(rows)}\t" + "\t".join(str(sum(c[i] for c in by_group.values())) for i in range(1, 5)))
    print(f"manifest: {os.path.join(wild, 'MANIFEST.tsv')}")


if __name__ == "__main__":
    main()
