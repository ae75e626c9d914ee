"""What every benchmark records beside its rows: the machine, the threads and the commit it measured.

    from common import write_results
    write_results("generator", {"meta": meta, "rows": rows}, markdown)

writes benchmarks/results/generator.json (the payload with an ``environment`` entry) and generator.md
(the markdown with an environment line under its title), atomically.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict:
    """machine, CPU cores, torch and its threads, the commit (``-dirty`` when the tree has changes), UTC time."""
    import torch

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if commit != "unknown" and git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return {"machine": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "commit": commit,
            "measured_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")}


def environment_line(env: dict) -> str:
    gpu = f", GPU {env['cuda']}" if env.get("cuda") else ""
    return (f"Measured {env['measured_utc']} UTC on {env['machine']}, {env['cpu_cores']} cores{gpu}, torch {env['torch']} "
            f"({env['torch_threads']} threads in the parent process), commit `{env['commit']}`.")


def write_results(name: str, payload: dict | list, markdown: str) -> dict:
    """``results/NAME.json`` (payload + environment; a list payload becomes {"rows": list}) and
    ``results/NAME.md`` (the environment line under the markdown's first line). Returns the environment."""
    from gan_partseg.files import atomic_write_text

    env = environment()
    payload = {"rows": payload} if isinstance(payload, list) else dict(payload)
    payload["environment"] = env
    title, _, rest = markdown.partition("\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(payload, indent=2))
    atomic_write_text(RESULTS / f"{name}.md", f"{title}\n\n{environment_line(env)}\n{rest.rstrip()}\n")
    return env


def run_row(script: str, spec: str, label: str, env: dict | None = None) -> dict | None:
    """Run ``python SCRIPT --row SPEC`` in a fresh process and return the JSON row it prints last (None, said on
    stdout, when it fails): each row's time and peak memory are then its own."""
    res = subprocess.run([sys.executable, script, "--row", spec], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        print(f"{label}: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row
