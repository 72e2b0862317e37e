"""Reference check: loom merge against mergekit-yaml (the peer) on configs the fixture does not cover.

Usage: python3 merge_vs_mergekit.py LOOM_BINARY FIXTURE_DIR   (FIXTURE_DIR = $LOOM_SHARED/fixtures/merge)

Runs both tools on the fixture's tiny Llama models with per-tensor filters, layer gradients, per-model gradients,
top-level defaults, lambda and out_dtype, and prints the largest absolute difference per config. DARE's random
masks are not compared here (mergekit draws them from torch's global generator; the fixture test feeds numpy's
masks to both). Needs mergekit (pip install mergekit); Python is used only for this check, never by loom.
"""

import os
import subprocess
import sys
import tempfile

from safetensors.torch import load_file

CONFIGS = {
    "slerp_filters_gradients": """
merge_method: slerp
base_model: ft_a
models:
  - model: ft_a
  - model: ft_b
parameters:
  t:
    - filter: self_attn
      value: [0, 1]
    - filter: mlp
      value: [1, 0.2]
    - value: 0.3
dtype: float32
""",
    "ties_per_model_gradient": """
merge_method: ties
base_model: base
models:
  - model: ft_a
    parameters:
      weight: [0.2, 0.8]
      density: 0.7
  - model: ft_b
    parameters:
      weight: 0.5
parameters:
  density: 0.4
  normalize: false
dtype: float32
""",
    "task_arithmetic_lambda_normalize": """
merge_method: task_arithmetic
base_model: base
models:
  - model: ft_a
    parameters: {weight: 0.5}
  - model: ft_b
    parameters: {weight: 0.25}
parameters:
  lambda: 0.7
  normalize: true
dtype: float32
""",
    "linear_filtered_weights_bf16_out": """
merge_method: linear
models:
  - model: ft_a
    parameters:
      weight:
        - filter: embed
          value: 0.9
        - value: 0.3
  - model: ft_b
    parameters: {weight: 0.7}
dtype: float32
out_dtype: bfloat16
""",
    "dare_ties_density_one": """
merge_method: dare_ties
base_model: base
models:
  - model: ft_a
    parameters: {weight: 0.6, density: 1.0}
  - model: ft_b
    parameters: {weight: 0.4, density: 1.0}
dtype: float32
""",
}


def tensors(path):
    out = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            out.update(load_file(os.path.join(path, f)))
    return out


def main():
    loom, fixture = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    print("| config | tensors | dtype | largest difference |")
    print("| --- | --- | --- | --- |")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in CONFIGS.items():
            cfg = os.path.join(tmp, name + ".yml")
            with open(cfg, "w") as f:
                f.write(text)
            theirs, ours = os.path.join(tmp, name + "-mk"), os.path.join(tmp, name + "-loom")
            subprocess.run(
                ["mergekit-yaml", cfg, theirs, "--no-copy-tokenizer", "--no-write-model-card"],
                cwd=fixture, env=env, check=True, capture_output=True)
            subprocess.run([loom, "merge", cfg, "-o", ours, "-q"], cwd=fixture, check=True)
            a, b = tensors(theirs), tensors(ours)
            assert sorted(a) == sorted(b), (name, sorted(set(a) ^ set(b)))
            diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
            dtypes = {str(b[k].dtype).replace("torch.", "") for k in b}
            assert all(a[k].dtype == b[k].dtype for k in a), name
            worst = max(worst, diff)
            print(f"| {name} | {len(a)} | {', '.join(sorted(dtypes))} | {diff:.3g} |")
    print(f"\nlargest difference over all configs: {worst:.3g}")


if __name__ == "__main__":
    main()
