#!/usr/bin/env bash
# Every measured figure of docs/results.md and the bundled segmenters, in dependency order.
# Each step caches its work under runs/ and resumes after an interruption: rerun to continue.
# 45 min on the 2-core CPU of 2026-11-25 (0.47 s per GAN step), 2-3 hours on slower ones (most of it
# inverting 230 rendered faces and training 108 heads).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" scripts/fewshot_results.py         # k-shot table; ships toyfaces-64-fewshot-10c-{1,5,10}shot
"$PY" scripts/autoshot_results.py        # Table 2 counterpart; ships toyfaces-64-autoshot-10c
"$PY" scripts/inversion_comparison.py    # latent optimizer settings
"$PY" benchmarks/realimage_latency.py    # auto-shot vs inversion + head
"$PY" scripts/make_cards.py
