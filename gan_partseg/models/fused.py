"""Optional fused kernels (``csrc/``): built on first use when asked, never at import, never in the way.

Ask for them with ``GAN_PARTSEG_FUSED=1`` (the ops that measured faster than PyTorch on the
tensor's device, ``FUSED_DEFAULT_OPS``), ``GAN_PARTSEG_FUSED=all`` (every op, on every device),
``GAN_PARTSEG_FUSED=bias_act,upfirdn2d`` (those), or ``StyleGAN2Config(fused_ops=True)`` /
:func:`request`. The first call that can use them builds the extension with
``torch.utils.cpp_extension.load`` (ninja; C++ for the CPU, plus the CUDA sources when CUDA is
available) into a cache folder; later runs reuse the build. If anything fails (no compiler, no
sources, a build error) one ``RuntimeWarning`` says so and the PyTorch path in ``ops.py`` is used.
Nothing changes numerically: the tests hold both paths to the same outputs and gradients.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import torch

FUSED_DEFAULT_OPS: dict[str, frozenset[str]] = {"cpu": frozenset(), "cuda": frozenset()}
"""Per device type, the ops ``GAN_PARTSEG_FUSED=1`` switches on: only those measured faster than the
PyTorch ops (``benchmarks/results/fused_ops.md``). On the CPU none is: PyTorch's vectorised
kernels beat the plain C++ loops (0.07-0.66x). CUDA is not measured yet (no GPU where this was
built), so it stays empty too; ``GAN_PARTSEG_FUSED=all`` forces every op anywhere."""

ALL_OPS = frozenset({"bias_act", "upfirdn2d"})
_lock = threading.Lock()
_state: dict = {"module": None, "tried": False, "requested": None, "error": None}


def sources_dir() -> Path | None:
    """``csrc/`` of a source checkout (or ``GAN_PARTSEG_CSRC``); None when the sources are not installed."""
    env = os.environ.get("GAN_PARTSEG_CSRC")
    for cand in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2] / "csrc"]:
        if (cand / "bindings.cpp").is_file():
            return cand
    return None


def request(ops: str | set[str] | None = "default") -> None:
    """Ask for fused ops from code: "default" (the faster ones), "all", a set of op names, or None (off)."""
    _state["requested"] = ops


def requested_ops(device_type: str = "cpu") -> frozenset[str]:
    """The ops asked for on ``device_type``, by :func:`request` or else ``GAN_PARTSEG_FUSED``."""
    asked = _state["requested"]
    if asked is None:
        env = os.environ.get("GAN_PARTSEG_FUSED", "").strip().lower()
        asked = {"": None, "0": None, "false": None, "1": "default", "true": "default", "all": "all"}.get(env, env)
    if asked is None:
        return frozenset()
    if asked == "default":
        return FUSED_DEFAULT_OPS.get(device_type, frozenset())
    if asked == "all":
        return ALL_OPS
    names = set(asked.split(",")) if isinstance(asked, str) else set(asked)
    return frozenset(names & ALL_OPS)


def build_directory() -> Path:
    root = Path(os.environ.get("GAN_PARTSEG_CACHE", Path.home() / ".cache" / "gan_partseg"))
    tag = f"torch{torch.__version__.split('+')[0]}-{'cuda' if _want_cuda() else 'cpu'}"
    path = root / "fused" / tag
    path.mkdir(parents=True, exist_ok=True)
    return path


def _want_cuda() -> bool:
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.cuda.is_available() and CUDA_HOME is not None


def load(force: bool = False):
    """Build (first time) or load the extension; None, with one warning, when that fails."""
    with _lock:
        if _state["tried"] and not force:
            return _state["module"]
        _state["tried"], _state["module"], _state["error"] = True, None, None
        try:
            src = sources_dir()
            if src is None:
                raise FileNotFoundError("the csrc/ sources are not installed (set GAN_PARTSEG_CSRC to a checkout's csrc)")
            from torch.utils.cpp_extension import load as cpp_load

            sources = [src / "bindings.cpp", src / "fused_bias_act.cpp", src / "upfirdn2d.cpp"]
            extra = {}
            if _want_cuda():
                sources += [src / "fused_bias_act_kernel.cu", src / "upfirdn2d_kernel.cu"]
                extra = {"extra_cflags": ["-O3", "-DWITH_CUDA"], "extra_cuda_cflags": ["-O3", "-DWITH_CUDA"]}
            else:
                extra = {"extra_cflags": ["-O3"]}
            _state["module"] = cpp_load(name="gan_partseg_fused", sources=[str(s) for s in sources],
                                        build_directory=str(build_directory()), verbose=False, **extra)
        except Exception as err:  # any failure: the PyTorch path stays
            _state["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
            warnings.warn(f"gan_partseg: the fused kernels could not be built ({_state['error']}); using the "
                          "PyTorch ops instead. Unset GAN_PARTSEG_FUSED to silence this.", RuntimeWarning,
                          stacklevel=3)
        return _state["module"]


def reset() -> None:
    """Forget the loaded module and the request (tests)."""
    with _lock:
        _state.update(module=None, tried=False, requested=None, error=None)


def available_for(op: str, x: torch.Tensor):
    """The extension module when ``op`` is requested and can run on ``x``; else None (use PyTorch)."""
    if op not in requested_ops(x.device.type) or x.dtype not in (torch.float32, torch.float64):
        return None
    module = load()
    if module is None or (x.is_cuda and not module.with_cuda) or not (x.is_cuda or x.device.type == "cpu"):
        return None
    return module


class _BiasActBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, out, slope, scale, module):
        ctx.save_for_backward(out)
        ctx.slope, ctx.scale = slope, scale
        return module.fused_bias_act_backward(grad.contiguous(), out, slope, scale)

    @staticmethod
    def backward(ctx, gg):  # the backward is linear in grad: its own adjoint (R1 needs this)
        (out,) = ctx.saved_tensors
        return gg * torch.where(out > 0, ctx.scale, ctx.slope * ctx.scale).to(gg.dtype), None, None, None, None


class BiasAct(torch.autograd.Function):
    """leaky_relu(x + bias) * scale with the fused forward and backward (twice differentiable)."""

    @staticmethod
    def forward(ctx, x, bias, slope, scale, module):
        out = module.fused_bias_act(x.contiguous(), bias.to(x.dtype).contiguous(), slope, scale)
        ctx.save_for_backward(out)
        ctx.slope, ctx.scale, ctx.module = slope, scale, module
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        gx = _BiasActBackward.apply(grad, out, ctx.slope, ctx.scale, ctx.module)
        gb = gx.sum([d for d in range(gx.ndim) if d != 1])
        return gx, gb, None, None, None


class UpFirDn2d(torch.autograd.Function):
    """upfirdn2d with the fused forward; its backward is the fused adjoint (itself differentiable)."""

    @staticmethod
    def forward(ctx, x, kernel, up, down, pad0, pad1, module):
        ctx.save_for_backward(kernel)
        ctx.args = (x.shape[2], x.shape[3], up, down, pad0, pad1, module)
        return module.upfirdn2d(x.contiguous(), kernel.to(x.dtype).contiguous(), up, down, pad0, pad1)

    @staticmethod
    def backward(ctx, grad):
        (kernel,) = ctx.saved_tensors
        return _UpFirDn2dAdjoint.apply(grad, kernel, *ctx.args), None, None, None, None, None, None


class _UpFirDn2dAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, kernel, h, w, up, down, pad0, pad1, module):
        ctx.save_for_backward(kernel)
        ctx.args = (up, down, pad0, pad1, module)
        return module.upfirdn2d_backward(grad.contiguous(), kernel.to(grad.dtype).contiguous(), h, w, up, down,
                                         pad0, pad1)

    @staticmethod
    def backward(ctx, gg):  # the adjoint of the adjoint is the forward op
        (kernel,) = ctx.saved_tensors
        up, down, pad0, pad1, module = ctx.args
        return (UpFirDn2d.apply(gg, kernel, up, down, pad0, pad1, module),
                None, None, None, None, None, None, None, None)
