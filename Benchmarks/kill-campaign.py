#!/usr/bin/env python3
"""The kill campaign: run a pipeline, SIGKILL it at seeded random moments in every one of its steps, re-run after
each kill, and compare every output file byte for byte with an uninterrupted run.

    python3 Benchmarks/kill-campaign.py --loom .build/release/loom --pipeline examples/pipeline.yaml --kills 36 --seed 1

1. The reference: one uninterrupted `loom run` into OUT, moved aside to OUT.reference (outputs name their own
   directory, so both runs write to the same path).
2. The plan, from the reference's manifests: for every step one kill inside it at a seeded random place, through
   the seam LOOM_TEST_KILL (Sources/LoomCore/Stage.swift: the process sends itself SIGKILL after N of the step's
   records are written, N drawn from 1..records, or at its start or commit point when it writes no records); then
   the remaining kills (up to --kills) from outside, `kill -9` at a seeded random time inside the steps that last
   long enough to hit (the trainer's, and any step over 0.2 s), drawn in proportion to their time.
3. The campaign: the kills in pipeline order, each on a fresh `loom run` of the same pipeline into OUT (which
   resumes: finished steps are skipped, a killed step starts over or, for the trainer, resumes from its last
   checkpoint). A run that finishes before its kill is counted as missed. Then one last run with no kill.
4. The check: the same files in OUT as in the reference, every one byte for byte, except manifest.json compared
   without its time and memory fields (started_at, finished_at, seconds, peak_memory_mb; for the report step also
   the size of report.html) and report.html with its numbers masked (it prints and draws those same times and
   memory figures; the rest of it comes from the manifests). No work files (.loom-work, *.tmp) left.

Prints one JSON object (kills per step type, missed kills, differing files); exit status 1 when anything differs,
a run failed, or fewer than --min-kills kills landed.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

VOLATILE = {"started_at", "finished_at", "seconds", "peak_memory_mb"}


def run(loom, pipeline, out, env_extra=None, quiet=True):
    env = dict(os.environ)
    env.pop("LOOM_TEST_KILL", None)
    if env_extra:
        env.update(env_extra)
    args = [loom, "run", pipeline, "-o", out] + (["-q"] if quiet else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def steps_of(out):
    return sorted(d for d in os.listdir(out) if re.match(r"^\d+-", d) and os.path.isdir(os.path.join(out, d)))


def manifest(out, step):
    with open(os.path.join(out, step, "manifest.json")) as f:
        return json.load(f)


def records_of(m):
    return sum(s.get("records", 0) for s in m.get("shards", []))


def normalised(path, rel):
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(rel)
    if name == "manifest.json":
        m = json.loads(data)
        if m.get("stage") == "report":
            m.get("counts", {}).pop("bytes", None)  # the size of report.html, which prints times

        def strip(v):
            if isinstance(v, dict):
                return {k: strip(x) for k, x in v.items() if k not in VOLATILE}
            if isinstance(v, list):
                return [strip(x) for x in v]
            return v
        return json.dumps(strip(m), sort_keys=True).encode()
    if name == "report.html":
        # Numbers with their units masked: the report prints each stage's time, throughput and memory (and draws
        # them); everything else in it comes from the manifests compared above.
        # A throughput cell is left empty when a stage took under a millisecond: empty and throughput cells alike.
        data = re.sub(rb"<td>(?:[^<]*/s[^<]*)?</td>", b"<td>~</td>", data)
        return re.sub(rb"\d[\d.,]*\s*(?:k|M|G)?\s*(?:ms|s|MB|kB|GB|B|records|tokens)?(?:/s)?", b"#", data)
    return data


def tree(root):
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            files[os.path.relpath(p, root)] = p
    return files


def compare(out, ref):
    a, b = tree(out), tree(ref)
    diffs = []
    for rel in sorted(set(a) | set(b)):
        if rel not in a:
            diffs.append(f"missing after the campaign: {rel}")
        elif rel not in b:
            diffs.append(f"extra after the campaign: {rel}")
        elif normalised(a[rel], rel) != normalised(b[rel], rel):
            diffs.append(f"differs: {rel}")
    leftovers = [r for r in a if ".loom-work" in r or r.endswith(".tmp")]
    return diffs, leftovers, len(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", default=".build/release/loom")
    ap.add_argument("--pipeline", default="examples/pipeline.yaml")
    ap.add_argument("--work", default="/tmp/loom-kill-campaign")
    ap.add_argument("--kills", type=int, default=36, help="kills planned in all (at least one per step)")
    ap.add_argument("--min-kills", type=int, default=30, help="fail when fewer kills land")
    ap.add_argument("--external", action="store_true", default=True)
    ap.add_argument("--no-external", dest="external", action="store_false", help="only the seam's kills")
    ap.add_argument("--per-type", action="store_true",
                    help="the short version: one seam kill in one (seeded) step of each step type, nothing else")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    loom = os.path.abspath(a.loom)
    pipeline = os.path.abspath(a.pipeline)
    os.makedirs(a.work, exist_ok=True)
    out = os.path.join(a.work, "out")
    ref = out + ".reference"
    for d in (out, ref):
        shutil.rmtree(d, ignore_errors=True)

    t0 = time.monotonic()
    p = run(loom, pipeline, out)
    _, err = p.communicate()
    if p.returncode != 0:
        print(err.decode(errors="replace"), file=sys.stderr)
        sys.exit("the reference run failed")
    reference_seconds = time.monotonic() - t0
    os.rename(out, ref)

    steps = steps_of(ref)
    info = {s: manifest(ref, s) for s in steps}
    rng = random.Random(a.seed)
    plan = []  # (step index, kind, argument)

    def seam_kill(i):
        n = records_of(info[steps[i]])
        if n > 0 and rng.random() < 0.85:
            return (i, "seam", f"records:{rng.randint(1, n)}")
        return (i, "seam", rng.choice(["start", "commit"]))

    if a.per_type:
        of_type = {}
        for i, s in enumerate(steps):
            of_type.setdefault(re.sub(r"^\d+-", "", s), []).append(i)
        plan = [seam_kill(rng.choice(ix)) for _, ix in sorted(of_type.items())]
        a.kills = len(plan)
        a.external = False
    else:
        plan = [seam_kill(i) for i in range(len(steps))]
    long_steps = [(i, s) for i, s in enumerate(steps) if info[s].get("seconds", 0) >= 0.2]
    extra = max(0, a.kills - len(plan))
    if a.external and long_steps:
        weights = [info[s]["seconds"] for _, s in long_steps]
        for _ in range(extra):
            i, s = rng.choices(long_steps, weights)[0]
            plan.append((i, "external", rng.uniform(0.05, 0.9) * info[s]["seconds"]))
    else:
        for _ in range(extra):
            i = rng.randrange(len(steps))
            n = records_of(info[steps[i]])
            plan.append((i, "seam", f"records:{rng.randint(1, n)}" if n else "commit"))
    plan.sort(key=lambda k: (k[0], k[1] == "external"))

    landed, missed, by_type, by_step = [], [], {}, {}
    for i, kind, arg in plan:
        step = steps[i]
        stype = re.sub(r"^\d+-", "", step)
        # A backstop: should the kill not land in this step (its records fewer than planned, or an outside kill
        # later than the step's end), the run stops at the start of the next step, so no later step is done
        # before its own kills.
        backstop = f",{steps[i + 1]}:start" if i + 1 < len(steps) else ""
        if kind == "seam":
            p = run(loom, pipeline, out, {"LOOM_TEST_KILL": f"{step}:{arg}{backstop}"})
            _, err = p.communicate()
        else:
            p = run(loom, pipeline, out, {"LOOM_TEST_KILL": backstop[1:]} if backstop else None)
            # Wait until the steps before this one are complete (a resumed run skips them at once), then give the
            # step a random share of its reference time (shrinking with each kill it has taken: a resumed trainer
            # has less left to do) before the kill; if the step finishes first, the backstop kills the run at the
            # next step's start (counted there).
            delay = arg * 0.6 ** by_step.get(step, 0)
            done = lambda s: os.path.exists(os.path.join(out, s, "manifest.json"))
            started = None
            while p.poll() is None:
                if started is None and all(done(s) for s in steps[:i]):
                    started = time.monotonic()
                if started is not None and time.monotonic() - started >= delay:
                    os.kill(p.pid, signal.SIGKILL)
                    break
                time.sleep(0.005)
            _, err = p.communicate()
            arg = delay
        # The step the kill landed in: the first one without a manifest.
        actual = next((s for s in steps if not os.path.exists(os.path.join(out, s, "manifest.json"))), None)
        what = f"{actual} {kind} {arg if kind == 'seam' else f'{arg:.2f} s'}"
        if p.returncode == -signal.SIGKILL and actual is None:
            # Every manifest was written and the process was on its way out: a kill, but in no step.
            landed.append(f"after the last step {kind}")
        elif p.returncode == -signal.SIGKILL:
            landed.append(what)
            atype = re.sub(r"^\d+-", "", actual)
            by_type[atype] = by_type.get(atype, 0) + 1
            by_step[actual] = by_step.get(actual, 0) + 1
        elif p.returncode == 0:
            missed.append(f"{step} {kind} {arg}: the run finished first")
        else:
            print(err.decode(errors="replace"), file=sys.stderr)
            sys.exit(f"a run failed (status {p.returncode}) before the kill at {step} {kind} {arg}")

    p = run(loom, pipeline, out)
    _, err = p.communicate()
    if p.returncode != 0:
        print(err.decode(errors="replace"), file=sys.stderr)
        sys.exit("the last run after the kills failed")
    diffs, leftovers, nfiles = compare(out, ref)
    types = sorted({re.sub(r"^\d+-", "", s) for s in steps})
    uncovered = [t for t in types if t not in by_type]
    result = {
        "pipeline": a.pipeline, "seed": a.seed, "steps": len(steps), "step_types": types,
        "kills_landed": len(landed), "kills_by_step_type": by_type, "missed": missed, "uncovered_step_types": uncovered,
        "files_compared": nfiles, "differences": diffs, "leftover_work_files": leftovers,
        "reference_seconds": round(reference_seconds, 1), "campaign_seconds": round(time.monotonic() - t0, 1),
        "kills": landed,
    }
    print(json.dumps(result, indent=1))
    ok = not diffs and not leftovers and not uncovered and len(landed) >= a.min_kills
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
