#!/usr/bin/env python3
"""`loom serve` under concurrent clients, through the official `openai` Python client.

N clients (default 16) start together (a barrier), each with its own question and max_tokens; even-numbered ones
stream (stream_options include_usage), odd-numbered ones do not. Prints one JSON object: per client its text,
finish_reason, completion_tokens and any error, for the Swift test (LoomServeTests) to compare with the model run
in-process. Exit status 1 when any call fails.

    loom serve out/model --port 8011 --max-batch 8 &
    python3 Benchmarks/peers/serve_concurrent_check.py --base-url http://127.0.0.1:8011/v1 --model model
"""
import argparse
import json
import sys
import threading

import openai


def question(i):
    return f"Question {i}: name a colour."


def max_tokens(i, base):
    return base + (i % 4) * 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=8)
    a = ap.parse_args()

    client = openai.OpenAI(base_url=a.base_url, api_key="unused", max_retries=0, timeout=300)
    barrier = threading.Barrier(a.clients)
    results = [None] * a.clients

    def run(i):
        messages = [{"role": "user", "content": question(i)}]
        out = {"client": i, "stream": i % 2 == 0, "question": question(i), "max_tokens": max_tokens(i, a.max_tokens)}
        barrier.wait()
        try:
            if i % 2 == 0:
                pieces, finish, usage = [], None, None
                stream = client.chat.completions.create(
                    model=a.model, messages=messages, max_tokens=out["max_tokens"], temperature=0, stream=True,
                    stream_options={"include_usage": True})
                for chunk in stream:
                    if chunk.usage is not None:
                        usage = chunk.usage.model_dump()
                    for c in chunk.choices:
                        if c.delta.content:
                            pieces.append(c.delta.content)
                        if c.finish_reason:
                            finish = c.finish_reason
                out.update(text="".join(pieces), finish_reason=finish,
                           completion_tokens=usage["completion_tokens"] if usage else None)
            else:
                r = client.chat.completions.create(
                    model=a.model, messages=messages, max_tokens=out["max_tokens"], temperature=0)
                out.update(text=r.choices[0].message.content, finish_reason=r.choices[0].finish_reason,
                           completion_tokens=r.usage.completion_tokens)
        except Exception as e:  # reported, and the exit status says so
            out["error"] = f"{type(e).__name__}: {e}"
        results[i] = out

    threads = [threading.Thread(target=run, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"results": results}))
    return 1 if any(r is None or "error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
