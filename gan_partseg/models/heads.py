"""Few-shot heads on generator activations: CNN, MLP and an ensemble of MLPs.

Every head starts with a **pointwise** layer over the concatenated features.
Resizing (bilinear / area) is linear and per channel, so

    conv1x1(resize(concat_l f_l)) == sum_l resize(conv1x1_l(f_l))

The efficient path (default) projects each layer at its own resolution (or
resizes first when that touches fewer elements, e.g. 1024 px layers read at
512 px), sums the projections of the layers that share a resolution, resizes
each sum once, and adds: the stacked (B, sum C_l, R, R) tensor of the research
code never exists. The CNN body runs channels-last (oneDNN's dilated
convolutions, no im2col buffer in the backward pass). The naive path (``path="naive"``) builds it and is
kept for tests and benchmarks; the two agree to float rounding.

Heads (docs/method.md section 3):

* ``cnn-s`` / ``cnn-m`` / ``cnn-l``: 1x1 conv to 128, dilated 3x3 convs
  (S: dilations 1,2,1; M: 2,4,1,2,4; L: 2,4,8,1,2,4,8, the paper's "1+8 layers",
  receptive field 61), channels 64 ... 64 -> 32, a 3x3 conv to the classes,
  leaky ReLU 0.2 between layers, no normalisation.
* ``mlp-0`` / ``mlp-1`` / ``mlp-2``: per-pixel linear layers with ReLU and 0, 1
  (128) or 2 (128, 32) hidden layers.
* ``ensemble-N``: N ``mlp-2`` members (the DatasetGAN recipe) sharing one
  projection matrix of N x 128 outputs; the prediction is the mean of the
  members' probabilities, and their disagreement is available.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from gan_partseg.errors import ArgumentError
from gan_partseg.models.features import check_modes, resize, stack_features

CNN_DILATIONS = {"S": (1, 2, 1), "M": (2, 4, 1, 2, 4), "L": (2, 4, 8, 1, 2, 4, 8)}
DILATION_RULES = ("paper", "scale")
"""How a CNN head's dilations follow its output size: "paper" keeps ``CNN_DILATIONS`` (chosen for 256-1024 px
outputs, the exact CNN-S/M/L for real checkpoints); "scale" uses d' = max(1, round(d * output / 512)), the
paper's schedule at 512 px, shrunk below it (at 64 px CNN-L's 61 px receptive field would span the image)."""
PAPER_SIZE = 512
MLP_HIDDEN = {0: (), 1: (128,), 2: (128, 32)}
PROJ_CHANNELS = 128


def parse_head(spec: str) -> dict:
    """'cnn-l' | 'cnn-m' | 'cnn-s' | 'mlp-0' | 'mlp-1' | 'mlp-2' | 'ensemble-10' -> config fields."""
    s = spec.strip().lower()
    if m := re.fullmatch(r"cnn-([sml])(?:/(paper|scale))?", s):  # cnn-l/scale: dilations follow the output size
        return {"head": "cnn", "cnn_size": m.group(1).upper(), "dilation_rule": m.group(2) or "paper"}
    if m := re.fullmatch(r"mlp-([012])", s):
        return {"head": "mlp", "mlp_hidden_layers": int(m.group(1))}
    if m := re.fullmatch(r"ensemble(?:-(\d+))?", s):
        return {"head": "ensemble", "ensemble_size": int(m.group(1) or 10), "mlp_hidden_layers": 2}
    raise ArgumentError(f"unknown head {spec!r}: use cnn-s, cnn-m, cnn-l (optionally /scale), mlp-0, mlp-1, mlp-2 or "
                        "ensemble-N")


def cnn_dilations(cnn_size: str, output_size: int | None = None, rule: str = "paper") -> tuple[int, ...]:
    """The dilations of a CNN head at ``output_size`` px under ``rule`` (``DILATION_RULES``)."""
    if rule not in DILATION_RULES:
        raise ArgumentError(f"dilation_rule must be one of {DILATION_RULES}, got {rule!r}")
    dil = CNN_DILATIONS[cnn_size]
    if rule == "paper" or output_size is None:
        return dil
    return tuple(max(1, round(d * output_size / PAPER_SIZE)) for d in dil)


def receptive_field(cnn_size: str, output_size: int | None = None, rule: str = "paper") -> int:
    """Receptive field (pixels) of a CNN head: 1 + 2 * (sum of dilations) + 2 for the last 3x3."""
    return 1 + 2 * sum(cnn_dilations(cnn_size, output_size, rule)) + 2


UPCAST_ELEMENTS = 2**21
"""Elements (8 MiB in float32) a low-precision feature map is upcast in at a time (a few channels at a time)."""


def _channel_chunks(f: torch.Tensor) -> list[slice]:
    step = max(1, UPCAST_ELEMENTS // max(1, f.shape[0] * f.shape[2] * f.shape[3]))
    return [slice(c, c + step) for c in range(0, f.shape[1], step)]


class _LowPrecisionProjection(torch.autograd.Function):
    """1x1 conv of cached low-precision features with a float32 weight, the math in float32.

    Plain autograd would keep a float32 copy of ``f`` alive for the weight gradient, undoing what the
    bf16 / fp16 cache saves; this saves ``f`` itself and upcasts it a few channels at a time, in forward
    and again in backward, so no full-size float32 copy ever exists.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(f, w)
        b, _, h, wd = f.shape
        # accumulate straight into the output: a conv per chunk would allocate an output-sized temporary each time
        out = torch.zeros(b, w.shape[0], h, wd, dtype=w.dtype, device=f.device)
        for c in _channel_chunks(f):
            for i in range(b):
                out[i].view(w.shape[0], h * wd).addmm_(w[:, c, 0, 0], f[i, c].to(w.dtype).flatten(1))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        f, w = ctx.saved_tensors
        grad_f = grad_w = None
        g = grad.to(w.dtype)
        if ctx.needs_input_grad[1]:
            # the weight gradient chunk by chunk, by the convolution's own backward: it takes the incoming gradient
            # in whatever memory format it arrives (a reshape of a channels-last gradient would copy it whole)
            grad_w = torch.empty_like(w)
            for c in _channel_chunks(f):
                fc = f[:, c].to(w.dtype)
                grad_w[:, c] = torch.ops.aten.convolution_backward(
                    g, fc, w[:, c], None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False])[1]
        if ctx.needs_input_grad[0]:
            grad_f = F.conv_transpose2d(g, w).to(f.dtype)
        return grad_f, grad_w


def upcast_resize(f: torch.Tensor, size: int, up_mode: str, down_mode: str, dtype: torch.dtype) -> torch.Tensor:
    """resize(f.to(dtype)) a few channels at a time (resizing is per channel), so a low-precision 1024 px layer
    never exists whole in float32."""
    if f.dtype == dtype:
        return resize(f, size, up_mode, down_mode)
    return torch.cat([resize(f[:, c].to(dtype), size, up_mode, down_mode) for c in _channel_chunks(f)], 1)


def project_layer(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, C, r, r) features (any float dtype) x (out, C, 1, 1) weight -> (B, out, r, r) in the weight's dtype."""
    if f.dtype == w.dtype or not torch.is_grad_enabled():
        return F.conv2d(f.to(w.dtype), w)
    return _LowPrecisionProjection.apply(f, w)


def _accumulate(out: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    """out + y in place; ``out`` turns channels-last once when ``y`` is (resize returns channels-last): adding
    across memory formats runs PyTorch's slow strided path every time."""
    if out is None:
        return y
    cl = torch.channels_last
    if y.is_contiguous(memory_format=cl) and not y.is_contiguous() and not out.is_contiguous(memory_format=cl):
        out = out.contiguous(memory_format=cl)
    return out.add_(y)


class PointwiseProjection(nn.Module):
    """The head's first layer: a 1x1 conv over all layers' channels, applied layer by layer.

    weight: (out, sum C_l), bias: (out,). ``layer_channels`` fixes the layer order and sizes.
    """

    def __init__(self, layer_channels: Mapping[str, int], out_channels: int):
        super().__init__()
        self.layer_names = list(layer_channels)
        self.splits = [int(c) for c in layer_channels.values()]
        total = sum(self.splits)
        self.weight = nn.Parameter(torch.empty(out_channels, total))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's default for a 1x1 conv over all channels: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def fold_input_scale(self, scales: Mapping[str, float]) -> None:
        """Make the projection of raw features equal the one it was trained with on ``f_l * scales[l]``.

        The projection is linear, so W (s f) = (W s) f: each layer's weight columns are multiplied by its
        scale, and the saved head reads the generator's activations as they are.
        """
        unknown = sorted(set(scales) - set(self.layer_names))
        if unknown:
            raise ValueError(f"scales for layers the head does not read: {unknown}")
        for w, name in zip(self.weight.split(self.splits, dim=1), self.layer_names):
            w.mul_(float(scales.get(name, 1.0)))

    def _check(self, features: Mapping[str, torch.Tensor]) -> None:
        got = [(n, f.shape[1]) for n, f in features.items()]
        want = list(zip(self.layer_names, self.splits))
        if got != want:
            raise ValueError(f"features do not match the head: expected (layer, channels) {want}, got {got}")

    @staticmethod
    def resize_first(in_channels: int, out_channels: int, r: int, size: int) -> bool:
        """True when resizing the input is cheaper than resizing the projection (fewer elements)."""
        return in_channels * size * size < out_channels * r * r

    def forward(self, features: Mapping[str, torch.Tensor], size: int, up_mode: str = "bilinear",
                down_mode: str = "area", path: str = "efficient", plan: str = "auto") -> torch.Tensor:
        """features: layer -> (B, C_l, r_l, r_l) -> (B, out, size, size) in the weight's dtype.

        Features may be cached in bfloat16 / float16 (``TrainFewShotConfig.cache_dtype``): each layer is
        upcast where it is used, so the math is float32 and only the cache is smaller.
        """
        self._check(features)
        if path == "naive":
            x = stack_features({n: f.to(self.weight.dtype) for n, f in features.items()}, size, up_mode, down_mode)
            return F.conv2d(x, self.weight[:, :, None, None], self.bias)
        if path != "efficient":
            raise ArgumentError(f"path must be 'efficient' or 'naive', got {path!r}")
        out = None
        low_res: dict[int, torch.Tensor] = {}  # resolution -> sum of the projections read there (not yet resized)
        for f, w in zip(features.values(), self.weight.split(self.splits, dim=1)):
            w = w[:, :, None, None]
            first = {"auto": self.resize_first(f.shape[1], w.shape[0], f.shape[-1], size),
                     "project-first": False, "resize-first": True}[plan]
            if f.shape[-1] == size:  # nothing to resize (and no float32 copy of a low-precision layer)
                y = project_layer(f, w)
            elif first:
                y = F.conv2d(upcast_resize(f, size, up_mode, down_mode, w.dtype), w)
            elif plan == "auto":
                # resize is linear, so the layers of one resolution share one resize of their summed projections
                r = f.shape[-1]
                y = project_layer(f, w)
                low_res[r] = y if r not in low_res else low_res[r].add_(y)
                continue
            else:
                y = resize(project_layer(f, w), size, up_mode, down_mode)
            out = _accumulate(out, y)
        for y in low_res.values():
            out = _accumulate(out, resize(y, size, up_mode, down_mode))
        return out + self.bias[None, :, None, None]


@dataclass
class HeadOutput:
    """logits: (B, n_classes, R, R); member_logits: (B, M, n_classes, R, R) for ensembles."""

    logits: torch.Tensor
    member_logits: torch.Tensor | None = None


def checkpoint_segments(body: nn.Sequential, x: torch.Tensor, segments: int | None = None) -> torch.Tensor:
    """Run ``body`` as ``segments`` activation-checkpointed pieces (default ceil(sqrt(blocks)), the classic
    memory-optimal split), cut only after an activation: a cut between a conv and its in-place activation would
    let the activation overwrite the segment output.

    One checkpoint around the whole body lowers nothing, since its backward recomputes every activation at once;
    pieces keep only their boundaries plus one piece's insides (CNN-L at 256 px: 159 -> 139 MiB).
    """
    cuts = [i + 1 for i, m in enumerate(body) if isinstance(m, (nn.LeakyReLU, nn.ReLU))]
    segments = segments or max(1, math.ceil(math.sqrt(len(cuts))))
    per = max(1, math.ceil(len(cuts) / segments))
    ends = sorted(set(cuts[per - 1::per][: segments - 1]) | {len(body)})
    start = 0
    for end in ends:
        x = checkpoint(body[start:end], x, use_reentrant=False)
        start = end
    return x


class SegmentationHead(nn.Module):
    """Projection + body. features (layer -> (B, C_l, r, r)) -> HeadOutput at ``size`` px."""

    def __init__(self, layer_channels: Mapping[str, int], n_classes: int, head: str = "cnn",
                 cnn_size: str = "L", mlp_hidden_layers: int = 1, ensemble_size: int = 10,
                 checkpoint_body: bool = False, dilation_rule: str = "paper", output_size: int | None = None):
        super().__init__()
        self.kind = head
        self.n_classes = n_classes
        self.ensemble_size = ensemble_size if head == "ensemble" else 1
        self.checkpoint_body = checkpoint_body
        if head == "cnn":
            if cnn_size not in CNN_DILATIONS:
                raise ArgumentError(f"cnn_size must be S, M or L, got {cnn_size!r}")
            self.project = PointwiseProjection(layer_channels, PROJ_CHANNELS)
            self.act = nn.LeakyReLU(0.2, inplace=True)
            layers: list[nn.Module] = []
            dil = cnn_dilations(cnn_size, output_size, dilation_rule)
            widths = [PROJ_CHANNELS] + [64] * (len(dil) - 1) + [32]
            for i, d in enumerate(dil):
                layers += [nn.Conv2d(widths[i], widths[i + 1], 3, padding=d, dilation=d),
                           nn.LeakyReLU(0.2, inplace=True)]
            layers.append(nn.Conv2d(32, n_classes, 3, padding=1))
            self.body = nn.Sequential(*layers)
        elif head in ("mlp", "ensemble"):
            if mlp_hidden_layers not in MLP_HIDDEN:
                raise ArgumentError(f"mlp_hidden_layers must be 0, 1 or 2, got {mlp_hidden_layers}")
            m = self.ensemble_size
            dims = list(MLP_HIDDEN[mlp_hidden_layers]) + [n_classes]
            self.project = PointwiseProjection(layer_channels, dims[0] * m)
            self.act = nn.ReLU(inplace=True) if len(dims) > 1 else nn.Identity()
            layers = []
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                if i:
                    layers.append(nn.ReLU(inplace=True))
                layers.append(nn.Conv2d(a * m, b * m, 1, groups=m))
            self.body = nn.Sequential(*layers)
        else:
            raise ArgumentError(f"head must be 'cnn', 'mlp' or 'ensemble', got {head!r}")

    def forward(self, features: Mapping[str, torch.Tensor], size: int, up_mode: str = "bilinear",
                down_mode: str = "area", path: str = "efficient", plan: str = "auto") -> HeadOutput:
        x = self.project(features, size, up_mode, down_mode, path, plan)
        if self.kind == "cnn":
            # channels-last sends the dilated 3x3 convs to oneDNN: on the CPU their backward then needs no im2col
            # buffer (measured at 256 px: peak 304 -> 64 MiB, step 0.59 -> 0.39 s; benchmarks/fewshot_head.py).
            # Converted before the in-place activation, so one copy of the first activation is saved, not two.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.act(x)
        if self.checkpoint_body and self.training and x.requires_grad and len(self.body):
            x = checkpoint_segments(self.body, x)
        else:
            x = self.body(x)
        if self.kind != "ensemble":
            return HeadOutput(logits=x.contiguous())
        b, _, h, w = x.shape
        members = x.view(b, self.ensemble_size, self.n_classes, h, w)
        mean_log_prob = torch.logsumexp(F.log_softmax(members, 2), 1) - math.log(self.ensemble_size)
        return HeadOutput(logits=mean_log_prob, member_logits=members)


def disagreement(member_logits: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence between ensemble members per pixel: (B, M, n, H, W) -> (B, H, W), nats."""
    p = F.softmax(member_logits, 2)
    mean = p.mean(1)
    ent = lambda q: -(q * torch.log(q.clamp_min(1e-12))).sum(-3)  # noqa: E731
    return ent(mean) - ent(p).mean(1)


__all__ = ["CNN_DILATIONS", "DILATION_RULES", "cnn_dilations", "project_layer",
           "HeadOutput", "PointwiseProjection", "SegmentationHead", "check_modes",
           "disagreement", "parse_head", "receptive_field"]
