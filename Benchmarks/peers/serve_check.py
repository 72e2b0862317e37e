#!/usr/bin/env python3
"""`loom serve` through the official `openai` Python client.

Calls chat.completions.create on a running server, without and with streaming (stream_options include_usage),
and models.list; prints one JSON object with what came back, for the Swift test (LoomServeTests) to compare with
the model run in-process. Exit status 1 when a call fails or the two replies disagree.

    loom serve out/model --port 8011 &
    python3 Benchmarks/peers/serve_check.py --base-url http://127.0.0.1:8011/v1 --model model
"""
import argparse
import json
import sys

import openai


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prompt", default="Name three colours.")
    a = ap.parse_args()

    client = openai.OpenAI(base_url=a.base_url, api_key="unused", max_retries=0, timeout=120)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": a.prompt}]
    models = [m.id for m in client.models.list().data]

    r = client.chat.completions.create(model=a.model, messages=messages, max_tokens=a.max_tokens, temperature=0)
    text = r.choices[0].message.content

    pieces, finish, usage, roles = [], None, None, []
    stream = client.chat.completions.create(
        model=a.model, messages=messages, max_tokens=a.max_tokens, temperature=0, stream=True,
        stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason

    error = None
    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
    except openai.NotFoundError as e:
        error = {"status": e.status_code, "code": e.code}

    out = {
        "models": models,
        "text": text,
        "finish_reason": r.choices[0].finish_reason,
        "usage": r.usage.model_dump(),
        "stream_text": "".join(pieces),
        "stream_pieces": len(pieces),
        "stream_roles": roles,
        "stream_finish_reason": finish,
        "stream_usage": usage,
        "not_found": error,
    }
    print(json.dumps(out))
    return 0 if out["stream_text"] == text and error is not None else 1


if __name__ == "__main__":
    sys.exit(main())
