#!/usr/bin/env python3
"""Load test of `loom serve`: C concurrent clients (default 64) send N requests (default 2,000) mixing

  valid      chat completions, half streamed (every one must be answered 200 with a finished reply),
  malformed  bad JSON, an unknown field, a garbage request line, a body over the limit, a header block over the
             limit, conflicting framing (every one must get its 4xx with an OpenAI-style error object),
  hang-ups   clients that disconnect mid-headers, right after sending a request, or after the first streamed
             bytes (no answer expected; the server must stay up and stop the abandoned generation).

Raw sockets (asyncio), so the malformed and abandoned requests are exactly what is on the wire. Samples the
server's resident memory (/proc/PID/status VmRSS) after every 10% of the requests. Prints one JSON object with
counts per kind and status, latency quantiles of valid requests, and the memory samples; exit status 1 when a
valid request was not answered 200, a malformed one did not get its 4xx, or the server died.

    loom serve out/model --port 8011 --max-batch 8 --max-body 64K &
    python3 Benchmarks/peers/serve_load.py --port 8011 --model model --pid $!
"""
import argparse
import asyncio
import json
import os
import random
import sys
import time


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def read_all(reader, limit=8 << 20):
    out = b""
    while len(out) < limit:
        d = await reader.read(65536)
        if not d:
            break
        out += d
    return out


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except Exception:
        return 0


def body_of(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        return out
    return body


def request(body, extra=b""):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def valid_body(model, i, stream):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": f"Request {i}: name a colour."}],
                       "max_tokens": 4 + i % 8, "temperature": 0, "stream": stream}).encode()


MALFORMED = {
    "bad_json": (lambda m: request(b'{"messages": [}'), 400),
    "unknown_field": (lambda m: request(json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokns": 3}).encode()), 400),
    "garbage_line": (lambda m: b"HELLO THERE\r\n\r\n", 400),
    "body_too_large": (lambda m: b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n{", 413),
    "headers_too_large": (lambda m: b"GET /v1/models HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
    "conflicting_framing": (lambda m: b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
}


async def one(kind, i, a, stats):
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
    except OSError as e:
        stats["connect_errors"].append(f"{kind} {i}: {e}")
        return
    try:
        if kind in ("valid", "valid_stream"):
            writer.write(request(valid_body(a.model, i, kind == "valid_stream")))
            await writer.drain()
            raw = await asyncio.wait_for(read_all(reader), a.timeout)
            st = status_of(raw)
            body = body_of(raw)
            ok = st == 200 and (b"data: [DONE]" in body if kind == "valid_stream" else b'"finish_reason"' in body)
            stats["latency"].append(time.monotonic() - t0)
            key = f"{kind}:{st}"
            stats["status"][key] = stats["status"].get(key, 0) + 1
            if not ok:
                stats["failures"].append(f"{kind} {i}: status {st}: {raw[:200]!r}")
        elif kind in MALFORMED:
            make, want = MALFORMED[kind]
            writer.write(make(a.model))
            await writer.drain()
            raw = await asyncio.wait_for(read_all(reader), a.timeout)
            st = status_of(raw)
            key = f"{kind}:{st}"
            stats["status"][key] = stats["status"].get(key, 0) + 1
            try:
                err = json.loads(body_of(raw))["error"]
                shaped = isinstance(err.get("message"), str) and isinstance(err.get("type"), str)
            except Exception:
                shaped = False
            if st != want or not shaped:
                stats["failures"].append(f"{kind} {i}: status {st}, wanted {want}: {raw[:200]!r}")
        elif kind == "hangup_headers":
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Len")
            await writer.drain()
        elif kind == "hangup_request":
            writer.write(request(valid_body(a.model, i, False).replace(b'"max_tokens": ', b'"max_tokens": 10')))
            await writer.drain()
        elif kind == "hangup_stream":
            writer.write(request(valid_body(a.model, i, True).replace(b'"max_tokens": ', b'"max_tokens": 10')))
            await writer.drain()
            await asyncio.wait_for(reader.read(64), a.timeout)
        stats["done"][kind] = stats["done"].get(kind, 0) + 1
    except Exception as e:  # a timeout or a reset where an answer was due
        stats["failures"].append(f"{kind} {i}: {type(e).__name__}: {e}")
    finally:
        writer.close()


async def main_async(a):
    kinds = (["valid"] * 35 + ["valid_stream"] * 35 + [k for k in MALFORMED for _ in range(3)]
             + ["hangup_headers"] * 4 + ["hangup_request"] * 4 + ["hangup_stream"] * 4)
    rng = random.Random(a.seed)
    plan = [rng.choice(kinds) for _ in range(a.requests)]
    stats = {"status": {}, "done": {}, "failures": [], "connect_errors": [], "latency": []}
    memory = [("start", rss_kb(a.pid))] if a.pid else []
    queue = asyncio.Queue()
    for i, k in enumerate(plan):
        queue.put_nowait((i, k))
    finished = 0
    step = max(1, a.requests // 10)

    async def client():
        nonlocal finished
        while not queue.empty():
            i, k = queue.get_nowait()
            await one(k, i, a, stats)
            finished += 1
            if a.pid and finished % step == 0:
                memory.append((finished, rss_kb(a.pid)))

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(a.clients)))
    wall = time.monotonic() - t0
    # Abandoned generations stop at their next token: give them a moment, then check the server still answers.
    await asyncio.sleep(0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
    writer.write(request(valid_body(a.model, 0, False)))
    await writer.drain()
    final = status_of(await asyncio.wait_for(read_all(reader), a.timeout))
    writer.close()
    if a.pid:
        memory.append(("end", rss_kb(a.pid)))
    lat = sorted(stats["latency"])
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None
    counts = {}
    for k in plan:
        counts[k] = counts.get(k, 0) + 1
    out = {
        "requests": a.requests, "clients": a.clients, "wall_seconds": round(wall, 2), "planned": counts,
        "status": stats["status"], "failures": stats["failures"][:20], "failure_count": len(stats["failures"]),
        "connect_errors": stats["connect_errors"][:5], "latency_p50": q(0.5), "latency_p99": q(0.99),
        "memory_kb": memory, "final_status": final,
    }
    print(json.dumps(out))
    return 0 if not stats["failures"] and not stats["connect_errors"] and final == 200 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--pid", type=int, default=0, help="the server's process id, to sample its memory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    sys.exit(asyncio.run(main_async(a)))


if __name__ == "__main__":
    main()
