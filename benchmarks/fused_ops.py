"""The optional fused kernels (csrc/) against the PyTorch ops, side by side in one run.

Rows: each op's forward and forward + backward on the shapes the generator uses, then a whole
generator forward and forward + backward (toyfaces-64 at batch 16; config-f 256 at batch 1 with
``--big``). Fused and PyTorch runs alternate, repeat by repeat, and the median is kept, so drift
on a shared machine hits both alike. ``speedup`` > 1 means fused is faster.

    python benchmarks/fused_ops.py [--repeats 7] [--big] [--device cpu|cuda]

Writes benchmarks/results/fused_ops.json and fused_ops.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from common import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--big", action="store_true", help="also the 256 px config-f generator at batch 1")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from gan_partseg import StyleGAN2Config, StyleGAN2Generator
    from gan_partseg.models import fused, ops

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fused.request("all")
    if fused.load() is None:
        raise SystemExit(f"the fused kernels could not be built: {fused._state['error']}")
    k = ops.make_kernel([1, 3, 3, 1]).to(device)
    cases = {
        "bias_act 16x128x32x32": lambda: (torch.randn(16, 128, 32, 32, device=device, requires_grad=True),
                                          lambda x: ops.fused_leaky_relu(x, bias)),
        "upfirdn2d blur after up-conv 16x64x65x65": lambda: (torch.randn(16, 64, 65, 65, device=device,
                                                                         requires_grad=True),
                                                             lambda x: ops.upfirdn2d(x, k * 4, 1, 1, (1, 1))),
        "upfirdn2d upsample (ToRGB skip) 16x3x32x32": lambda: (torch.randn(16, 3, 32, 32, device=device,
                                                                           requires_grad=True),
                                                               lambda x: ops.upfirdn2d(x, k * 4, 2, 1, (2, 1))),
        "upfirdn2d down (D) 16x64x64x64": lambda: (torch.randn(16, 64, 64, 64, device=device, requires_grad=True),
                                                   lambda x: ops.upfirdn2d(x, k, 1, 2, (1, 1))),
    }
    bias = torch.randn(128, device=device, requires_grad=True)
    rows = []

    def compare(name, kind, fn):
        times = {"fused": [], "pytorch": []}
        for _ in range(args.repeats):  # alternate, so drift hits both
            for mode in ("fused", "pytorch"):
                fused.request("all" if mode == "fused" else None)
                times[mode].append(timed(fn, 1, sync))
        fused.request("all")
        f, p = statistics.median(times["fused"]), statistics.median(times["pytorch"])
        rows.append({"case": name, "pass": kind, "fused_s": f, "pytorch_s": p, "speedup": p / f})
        print(f"{name:48s} {kind:9s} fused {f * 1e3:9.2f} ms  pytorch {p * 1e3:9.2f} ms  x{p / f:5.2f}", flush=True)

    for name, make in cases.items():
        x, op = make()
        compare(name, "forward", lambda: op(x.detach()))
        compare(name, "fwd+bwd", lambda: op(x).square().mean().backward())

    gens = [("toyfaces-64 generator, batch 16", "toyfaces-64", 16)]
    if args.big:
        gens.append(("config-f 256 generator, batch 1", None, 1))
    for name, source, batch in gens:
        torch.manual_seed(0)
        g = (StyleGAN2Generator.from_pretrained(source) if source else
             StyleGAN2Generator(StyleGAN2Config(size=256))).to(device)
        z = torch.randn(batch, g.config.style_dim, device=device)
        with torch.no_grad():
            compare(name, "forward", lambda: g([z], randomize_noise=False))
        compare(name, "fwd+bwd", lambda: g([z], randomize_noise=False).images.square().mean().backward())

    info = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "repeats": args.repeats, "rows": rows}
    lines = [f"# Fused kernels vs PyTorch ops ({device}, {info['threads']} threads)", "",
             "| case | pass | fused ms | PyTorch ms | speedup |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['pass']} | {1e3 * r['fused_s']:.2f} | {1e3 * r['pytorch_s']:.2f} | "
              f"{r['speedup']:.2f} |" for r in rows]
    lines += ["", "Medians of alternating runs; speedup > 1: fused is faster. "
              "Reproduce: `python benchmarks/fused_ops.py`.", ""]
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    write_results(f"fused_ops{suffix}", info, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
