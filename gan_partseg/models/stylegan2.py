"""StyleGAN2 generator and discriminator with the rosinality module layout.

Attribute names follow ``rosinality/stylegan2-pytorch``'s ``model.py`` so that
its checkpoints (``ckpt["g_ema"]``, ``ckpt["d"]``) load unchanged: the state
dict of a 256 px config-f generator has the published 135 entries. Everything
is plain PyTorch (see :mod:`gan_partseg.models.ops`); nothing is compiled.

The generator additionally returns the activations of every synthesis conv
(``conv1``, ``convs.0``, ``convs.1``, ...), which is what the few-shot heads
read.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from gan_partseg.errors import ArgumentError
from gan_partseg.hub import ResolveBundledMixin
from gan_partseg.models import fused
from gan_partseg.models.ops import fused_leaky_relu, make_kernel, upfirdn2d

# rosinality's channel table for channel_multiplier m: resolution -> channels
_BASE_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
_MULTIPLIED = {64, 128, 256, 512, 1024}


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's table: {4: 512, ..., 32: 512, 64: 256*m, ..., 1024: 16*m}."""
    return {r: c * channel_multiplier if r in _MULTIPLIED else c for r, c in _BASE_CHANNELS.items()}


# --------------------------------------------------------------------------- config


# The one place for truncation defaults, per purpose: "view" for pictures a person looks at (grid, demo,
# the Space), "data" for samples that stand for the generator's whole distribution (shots, make-dataset).
TRUNCATION = {"view": 0.8, "data": 1.0}
# Samples of z behind the average latent of a generator without its own (see average_latent).
AVERAGE_LATENT_SAMPLES = 4096


class StyleGAN2Config(PreTrainedConfig):
    """Configuration of a StyleGAN2 generator (field names follow rosinality's constructor).

    Args:
        size: output resolution in pixels, a power of two >= 4.
        style_dim: width of z and w.
        n_mlp: number of equalized linear layers in the mapping network.
        channel_multiplier: 2 for config-f, 1 for config-e.
        blur_kernel: 1-D FIR taps used for up/down sampling.
        lr_mlp: learning-rate multiplier of the mapping network.
        channels: resolution -> channels. ``None`` takes rosinality's table for
            ``channel_multiplier``; a partial table overrides those entries. Keys
            are stored as strings in JSON; use :meth:`channel` to read it.
        has_latent_avg: the model carries a ``latent_avg`` buffer (style_dim,), the
            training-time average W that rosinality's converted checkpoints store.
        fused_ops: ask for the optional fused C++ / CUDA kernels of ``csrc/`` (built on first use;
            the PyTorch ops stay whenever they cannot be built). Same as ``GAN_PARTSEG_FUSED=1``.
        conv_clamp: stylegan2-ada-pytorch's ``conv_clamp`` (256 in its training configs): every synthesis
            conv's output (after bias, leaky ReLU and gain sqrt(2)) and every ToRGB output (after bias) is
            clamped to [-conv_clamp, conv_clamp]; in the discriminator, fromrgb, both convs of each residual
            block and the epilogue conv (not the skip branch, not the linear layers), as NVIDIA's layers do.
            ``None`` (rosinality checkpoints, our own models, configs saved before the field existed): no clamp.
    """

    model_type = "stylegan2"

    size: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    blur_kernel: list[int] | tuple[int, ...] = (1, 3, 3, 1)
    lr_mlp: float = 0.01
    channels: dict | None = None
    has_latent_avg: bool = False
    fused_ops: bool = False
    conv_clamp: float | None = None

    def __post_init__(self, **kwargs):
        clamp = self.conv_clamp
        if clamp is not None:
            if isinstance(clamp, bool) or not isinstance(clamp, (int, float)) or not 0 <= clamp < math.inf:
                raise ArgumentError(f"conv_clamp must be None (no clamp) or a finite number >= 0, got {clamp!r}")
            self.conv_clamp = float(clamp)
        if not isinstance(self.size, int) or self.size < 4 or self.size & (self.size - 1):
            raise ArgumentError(f"size must be a power of two >= 4, got {self.size!r}")
        if self.n_mlp < 1 or self.style_dim < 1:
            raise ArgumentError(f"n_mlp and style_dim must be positive, got {self.n_mlp}, {self.style_dim}")
        table = default_channels(self.channel_multiplier)
        for key, value in (self.channels or {}).items():
            table[int(key)] = int(value)
        missing = [r for r in self.resolutions if r not in table]
        if missing:
            raise ArgumentError(f"channels has no entry for resolutions {missing}")
        self.channels = {str(r): table[r] for r in sorted(table) if r <= self.size}
        self.blur_kernel = [int(k) if float(k).is_integer() else float(k) for k in self.blur_kernel]
        super().__post_init__(**kwargs)

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def resolutions(self) -> list[int]:
        """[4, 8, ..., size]."""
        return [2**i for i in range(2, int(math.log2(self.size)) + 1)]

    @property
    def n_latent(self) -> int:
        """Number of style vectors in W+ (2 * log2(size) - 2)."""
        return self.log_size * 2 - 2

    @property
    def num_layers(self) -> int:
        """Number of noise maps / styled convs (conv1 + 2 per resolution above 4)."""
        return (self.log_size - 2) * 2 + 1

    def channel(self, resolution: int) -> int:
        return int(self.channels[str(resolution)])


class StyleGAN2DiscriminatorConfig(StyleGAN2Config):
    """Configuration of the StyleGAN2 residual discriminator (the generator's fields, of which ``style_dim``,
    ``n_mlp`` and ``lr_mlp`` are unused, and two of its own).

    Args:
        mbstd_group_size: images per group of the minibatch-stddev layer; ``None`` takes the whole batch
            as one group. 4 in rosinality and stylegan2-ada-pytorch's ``auto`` config; NVIDIA pickles store
            their own (8 in ``paper256`` / ``paper512``), which ``convert nvidia`` copies here.
        mbstd_num_channels: stddev features appended to the last block's output (its channels are split into
            this many groups, each with its own feature); 0 turns the layer off. 1 in both code bases.
    Configs written before these fields existed load with the defaults (4, 1), which is what they ran.
    """

    model_type = "stylegan2_discriminator"

    mbstd_group_size: int | None = 4
    mbstd_num_channels: int = 1

    def __post_init__(self, **kwargs):
        g, f = self.mbstd_group_size, self.mbstd_num_channels
        if g is not None and (isinstance(g, bool) or not isinstance(g, int) or g < 1):
            raise ArgumentError(f"mbstd_group_size must be a positive integer or None (the whole batch), got {g!r}")
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ArgumentError(f"mbstd_num_channels must be an integer >= 0 (0 = no stddev feature), got {f!r}")
        super().__post_init__(**kwargs)
        if f and self.channel(4) % f:
            raise ArgumentError(f"mbstd_num_channels {f} does not divide the {self.channel(4)} channels at 4 px")


# --------------------------------------------------------------------------- blocks


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """FIR filter with padding; the kernel is a persistent buffer (``blur.kernel``)."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.taps = list(kernel)
        self.gain = upsample_factor**2
        self.register_buffer("kernel", make_kernel(kernel) * self.gain)
        self.pad = pad

    def reset_kernel(self) -> None:
        init.copy_(self.kernel, make_kernel(self.taps) * self.gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling used on the ToRGB skip path (``upsample.kernel``)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.taps = list(kernel)
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def reset_kernel(self) -> None:
        init.copy_(self.kernel, make_kernel(self.taps) * self.factor**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: stores N(0, 1/lr_mul) weights, scales at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.bias_init = bias_init
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


class EqualConv2d(nn.Module):
    """Conv2d with equalized learning rate."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)


class FusedLeakyReLU(nn.Module):
    """Bias (``activate.bias``) + leaky ReLU 0.2 + gain sqrt(2), then with ``clamp`` a clamp to [-clamp, clamp].

    The clamp comes after the gain, as in NVIDIA's ``bias_act(..., clamp=conv_clamp)``; x: (B, C, ...).
    """

    def __init__(self, channel: int, clamp: float | None = None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = fused_leaky_relu(x, self.bias)
        # None leaves the path untouched, so unclamped models stay bit-identical
        return out if self.clamp is None else out.clamp(-self.clamp, self.clamp)


class ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x)


class ModulatedConv2d(nn.Module):
    """Style-modulated (and optionally demodulated) conv; ``upsample`` = transposed conv + blur.

    x: (B, in, H, W), style: (B, style_dim) -> (B, out, H', W').
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # Modulate the input and demodulate the output instead of building per-sample
        # weights: the same result as rosinality's grouped conv, with one shared-weight
        # conv over the batch (several times faster on the CPU).
        batch, in_channel = x.shape[:2]
        style = self.modulation(style)  # (B, in)
        weight = self.scale * self.weight.squeeze(0)  # (out, in, k, k)
        x = x * style.view(batch, in_channel, 1, 1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            w2 = weight.pow(2).sum([2, 3])  # (out, in)
            demod = torch.rsqrt(style.pow(2) @ w2.t() + self.eps)  # (B, out)
            out = out * demod.view(batch, self.out_channel, 1, 1)
        return out


class NoiseInjection(nn.Module):
    """Adds ``weight * noise``; fresh N(0, 1) noise when none is given."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            batch, _, height, width = image.shape
            noise = image.new_empty(batch, 1, height, width).normal_()
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(latent.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated conv -> noise injection -> bias + leaky ReLU [-> clamp to +-conv_clamp]."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1), demodulate: bool = True,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim,
                                    upsample=upsample, blur_kernel=blur_kernel, demodulate=demodulate)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel, clamp=conv_clamp)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise=noise))


class ToRGB(nn.Module):
    """1x1 modulated conv + bias [-> clamp to +-conv_clamp], plus the upsampled ``skip`` image: (B, 3, H, W)."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = conv_clamp

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if self.clamp is not None:  # NVIDIA's ToRGBLayer clamps its own output, before the skip image is added
            out = out.clamp(-self.clamp, self.clamp)
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConvLayer(nn.Sequential):
    """Discriminator conv: [blur] -> equalized conv -> [bias + leaky ReLU [-> clamp to +-clamp]].

    ``clamp`` needs the bias + activation (``FusedLeakyReLU``), which is where NVIDIA's ``Conv2dLayer`` clamps.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True, activate: bool = True,
                 clamp: float | None = None):
        if clamp is not None and not (activate and bias):
            raise ArgumentError("ConvLayer clamps after its bias + activation: clamp needs activate=True, bias=True")
        layers: list[nn.Module] = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=padding, stride=stride,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel, clamp=clamp) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual discriminator block: (B, in, H, W) -> (B, out, H/2, W/2).

    With ``conv_clamp`` both convs clamp to +-conv_clamp before the sum is scaled by 1/sqrt(2): NVIDIA's
    ``conv1`` (our ``conv2``) runs with gain sqrt(0.5) and clamps at +-conv_clamp*sqrt(0.5), the same numbers. Its skip
    ``Conv2dLayer`` is built without ``conv_clamp``, so the skip branch here is not clamped either.
    """

    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, clamp=conv_clamp)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel, clamp=conv_clamp)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, blur_kernel=blur_kernel,
                              activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return (out + self.skip(x)) / math.sqrt(2)


# --------------------------------------------------------------------------- init shared by both models


def init_stylegan2_module(module: nn.Module) -> None:
    """Initialise one module as rosinality does; respects transformers' loaded-tensor flags."""
    if isinstance(module, EqualLinear):
        init.normal_(module.weight, std=1.0 / module.lr_mul)
        if module.bias is not None:
            init.constant_(module.bias, float(module.bias_init))
    elif isinstance(module, EqualConv2d):
        init.normal_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, ModulatedConv2d):
        init.normal_(module.weight)
    elif isinstance(module, (NoiseInjection,)):
        init.zeros_(module.weight)
    elif isinstance(module, (FusedLeakyReLU, ToRGB)):
        init.zeros_(module.bias)
    elif isinstance(module, ConstantInput):
        init.normal_(module.input)
    elif isinstance(module, (Blur, Upsample)):
        module.reset_kernel()
    elif isinstance(module, NoiseBuffers):
        for buf in module.buffers(recurse=False):
            init.normal_(buf)


class NoiseBuffers(nn.Module):
    """Holds the fixed noise maps ``noise_0 .. noise_{L-1}`` as persistent buffers (1, 1, r, r)."""

    def __init__(self, resolutions: Sequence[int]):
        super().__init__()
        for i, r in enumerate(resolutions):
            self.register_buffer(f"noise_{i}", torch.randn(1, 1, r, r))


# --------------------------------------------------------------------------- outputs


@dataclass
class StyleGAN2Output(ModelOutput):
    """Generator output.

    images: (B, 3, size, size), roughly in [-1, 1] (not clamped).
    latents: (B, n_latent, style_dim) W+ codes, when ``return_latents``.
    features: ordered mapping layer name -> (B, C_l, r_l, r_l), after activation,
        ``conv1`` (4 px) then ``convs.0``, ``convs.1``, ... (full size), when ``return_features``.
    """

    images: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    features: "OrderedDict[str, torch.Tensor] | None" = None


# --------------------------------------------------------------------------- generator


class StyleGAN2Generator(ResolveBundledMixin, PreTrainedModel):
    """StyleGAN2 generator (rosinality layout) that can also return every synthesis layer's activations.

    Example::

        g = StyleGAN2Generator.from_pretrained("toyfaces-64")
        w = g.get_latent(torch.randn(4, g.config.style_dim))
        out = g([w], input_is_latent=True, truncation=TRUNCATION["view"], randomize_noise=False,
                return_features=True)
        out.images      # (4, 3, 64, 64) in [-1, 1]
        out.features    # {"conv1": (4, C, 4, 4), "convs.0": (4, C, 8, 8), ...}
    """

    config_class = StyleGAN2Config
    main_input_name = "styles"
    base_model_prefix = "stylegan2"
    _no_split_modules = ["StyledConv", "ToRGB"]

    def __init__(self, config: StyleGAN2Config):
        super().__init__(config)
        c = config
        if c.fused_ops:
            fused.request("default")
        self.size = c.size
        self.style_dim = c.style_dim
        self.log_size = c.log_size
        self.num_layers = c.num_layers
        self.n_latent = c.n_latent
        blur = c.blur_kernel

        layers: list[nn.Module] = [PixelNorm()]
        for _ in range(c.n_mlp):
            layers.append(EqualLinear(c.style_dim, c.style_dim, lr_mul=c.lr_mlp, activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)

        self.input = ConstantInput(c.channel(4))
        clamp = c.conv_clamp
        self.conv1 = StyledConv(c.channel(4), c.channel(4), 3, c.style_dim, blur_kernel=blur, conv_clamp=clamp)
        self.to_rgb1 = ToRGB(c.channel(4), c.style_dim, upsample=False, conv_clamp=clamp)

        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channel = c.channel(4)
        for res in c.resolutions[1:]:
            out_channel = c.channel(res)
            self.convs.append(StyledConv(in_channel, out_channel, 3, c.style_dim, upsample=True, blur_kernel=blur,
                                         conv_clamp=clamp))
            self.convs.append(StyledConv(out_channel, out_channel, 3, c.style_dim, blur_kernel=blur, conv_clamp=clamp))
            self.to_rgbs.append(ToRGB(out_channel, c.style_dim, blur_kernel=blur, conv_clamp=clamp))
            in_channel = out_channel

        self.noises = NoiseBuffers(self.noise_resolutions)
        if c.has_latent_avg:
            self.register_buffer("latent_avg", torch.zeros(c.style_dim))
        self.post_init()

    # -- structure ------------------------------------------------------------------

    @property
    def noise_resolutions(self) -> list[int]:
        """Resolution of each noise map / styled conv: [4, 8, 8, 16, 16, ...]."""
        return [2 ** ((i + 5) // 2) for i in range(self.num_layers)]

    @property
    def feature_layers(self) -> list[str]:
        """Names of the synthesis convs whose activations ``return_features`` gives, in order."""
        return ["conv1"] + [f"convs.{i}" for i in range(len(self.convs))]

    def activation_bytes(self) -> int:
        """float32 bytes of every synthesis layer's activation for one image (what ``return_features`` gives):
        the unit the commands size their batches by. 1024 px config-f: 525 MB; the embedded 64 px: 2 MB."""
        return 4 * sum(c * r * r for c, r in self.feature_shapes().values())

    def feature_shapes(self) -> "OrderedDict[str, tuple[int, int]]":
        """layer name -> (channels, resolution)."""
        shapes = OrderedDict(conv1=(self.config.channel(4), 4))
        for i, res in enumerate(self.noise_resolutions[1:]):
            shapes[f"convs.{i}"] = (self.config.channel(res), res)
        return shapes

    def _init_weights(self, module: nn.Module) -> None:
        if module is self and self.config.has_latent_avg:
            init.zeros_(self.latent_avg)
        init_stylegan2_module(module)

    # -- latents ------------------------------------------------------------------

    def make_noise(self, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh noise maps: list of ``num_layers`` tensors (1, 1, r, r)."""
        device = self.input.input.device
        return [torch.randn(1, 1, r, r, device=device, generator=generator) for r in self.noise_resolutions]

    def fixed_noise(self) -> list[torch.Tensor]:
        """The stored noise maps (``noises.noise_i``)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    @torch.no_grad()
    def mean_latent(self, n_latent: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """Average W over ``n_latent`` samples of z: (1, style_dim)."""
        z = torch.randn(n_latent, self.style_dim, device=self.input.input.device, generator=generator)
        return self.style(z).mean(0, keepdim=True)

    @torch.no_grad()
    def average_latent(self) -> torch.Tensor:
        """The latent that truncation pulls toward: (1, style_dim).

        The checkpoint's own average (rosinality ``latent_avg``, NVIDIA ``w_avg``) when it carries one
        (``config.has_latent_avg``); otherwise the mean of ``AVERAGE_LATENT_SAMPLES`` mapped z drawn from
        ``torch.Generator().manual_seed(0)``, computed once per loaded model (weights changed in place
        afterwards, as in training, keep the old value) and made part of the weights by
        :meth:`store_average_latent`.
        """
        if self.config.has_latent_avg:
            return self.latent_avg[None]
        cached = getattr(self, "_average_latent", None)
        device = self.input.input.device
        if cached is None or cached.device != device:
            cached = self.mean_latent(AVERAGE_LATENT_SAMPLES, generator=torch.Generator(device).manual_seed(0))
            self._average_latent = cached
        return cached

    @torch.no_grad()
    def store_average_latent(self) -> None:
        """Make :meth:`average_latent` part of the weights (``latent_avg``), so a saved model carries it."""
        if self.config.has_latent_avg:
            return
        avg = self.average_latent()[0].clone()
        self.config.has_latent_avg = True
        self.register_buffer("latent_avg", avg)

    def truncate(self, w: torch.Tensor, truncation: float, truncation_latent: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """The one truncation: ``avg + psi * (w - avg)`` for w (B, D) or w+ (B, n_latent, D); psi 1 returns w.

        ``truncation_latent`` (1, D) overrides :meth:`average_latent`.
        """
        if truncation == 1:
            return w
        avg = self.average_latent() if truncation_latent is None else truncation_latent
        if w.ndim == 3:
            avg = avg.view(1, 1, -1)
        return avg + truncation * (w - avg)

    @torch.no_grad()
    def seeded_latents(self, seeds: Sequence[int], truncation: float = 1.0
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Seed s -> (w, noise maps) drawn from ``torch.Generator().manual_seed(s)``: (B, D), [(B, 1, r, r)].

        z first, then one noise map per layer, from the same generator, so a seed names one sample
        everywhere (``make-dataset``, ``sample``, the demo, the Space).
        """
        device = self.input.input.device
        zs, noises = [], []
        for s in seeds:
            gen = torch.Generator().manual_seed(int(s))
            zs.append(torch.randn(1, self.style_dim, generator=gen))
            noises.append([torch.randn(1, 1, r, r, generator=gen) for r in self.noise_resolutions])
        w = self.truncate(self.get_latent(torch.cat(zs).to(device)), truncation)
        return w, [torch.cat([n[j] for n in noises]).to(device) for j in range(self.num_layers)]

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Map z (B, style_dim) to w (B, style_dim)."""
        return self.style(z)

    # -- forward ------------------------------------------------------------------

    def forward(
        self,
        styles: Sequence[torch.Tensor] | torch.Tensor,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        return_features: bool = False,
        return_dict: bool = True,
    ) -> StyleGAN2Output:
        """Synthesize images.

        Args:
            styles: list of one or two codes (two = style mixing at ``inject_index``).
                Each is z (B, style_dim) or, with ``input_is_latent``, w (B, style_dim)
                or w+ (B, n_latent, style_dim). A bare tensor counts as a one-element list.
            truncation: psi; < 1 pulls codes toward ``truncation_latent`` (1, style_dim), by default
                :meth:`average_latent` (the checkpoint's own ``latent_avg`` when it has one).
            noise: ``num_layers`` maps (B or 1, 1, r, r); None takes fresh noise when
                ``randomize_noise`` else the stored maps.
            return_features: also return every synthesis conv's activation.
        """
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        styles = list(styles)
        if not 1 <= len(styles) <= 2:
            raise ValueError(f"styles must hold one or two codes, got {len(styles)}")
        if not input_is_latent:
            for s in styles:
                if s.ndim != 2 or s.shape[-1] != self.style_dim:
                    raise ValueError(f"z must be (B, {self.style_dim}), got {tuple(s.shape)}")
            styles = [self.style(s) for s in styles]
        for s in styles:
            if s.shape[-1] != self.style_dim or s.ndim not in (2, 3) or (s.ndim == 3 and s.shape[1] != self.n_latent):
                raise ValueError(
                    f"w must be (B, {self.style_dim}) or w+ (B, {self.n_latent}, {self.style_dim}), got {tuple(s.shape)}"
                )

        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.fixed_noise()
        elif len(noise) != self.num_layers:
            raise ValueError(f"noise must hold {self.num_layers} maps, got {len(noise)}")

        styles = [self.truncate(s, truncation, truncation_latent) for s in styles]

        latent = self._broadcast_styles(styles, inject_index)

        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        out = self.input(latent)
        out = self.conv1(out, latent[:, 0], noise=noise[0])
        if return_features:
            features["conv1"] = out
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, latent[:, i], noise=noise[2 * k + 1])
            if return_features:
                features[f"convs.{2 * k}"] = out
            out = self.convs[2 * k + 1](out, latent[:, i + 1], noise=noise[2 * k + 2])
            if return_features:
                features[f"convs.{2 * k + 1}"] = out
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2

        result = StyleGAN2Output(
            images=skip,
            latents=latent if return_latents else None,
            features=features if return_features else None,
        )
        return result if return_dict else result.to_tuple()

    def _broadcast_styles(self, styles: list[torch.Tensor], inject_index: int | None) -> torch.Tensor:
        """One or two w / w+ codes -> w+ (B, n_latent, style_dim)."""
        n = self.n_latent
        if len(styles) == 1:
            s = styles[0]
            return s if s.ndim == 3 else s.unsqueeze(1).repeat(1, n, 1)
        if inject_index is None:
            inject_index = int(torch.randint(1, n, ()).item())
        if not 0 <= inject_index <= n:
            raise ValueError(f"inject_index must be in [0, {n}], got {inject_index}")
        a, b = (s if s.ndim == 3 else s.unsqueeze(1).repeat(1, n, 1) for s in styles)
        return torch.cat([a[:, :inject_index], b[:, inject_index:]], 1)


# --------------------------------------------------------------------------- discriminator


@dataclass
class DiscriminatorOutput(ModelOutput):
    """logits: (B, 1) realness scores; features: block name -> activation when asked."""

    logits: torch.Tensor | None = None
    features: "OrderedDict[str, torch.Tensor] | None" = None


class StyleGAN2Discriminator(ResolveBundledMixin, PreTrainedModel):
    """StyleGAN2 residual discriminator (rosinality layout; ``ckpt["d"]`` loads unchanged).

    images: (B, 3, size, size) in [-1, 1] -> logits (B, 1).

    The minibatch-stddev layer (NVIDIA's ``MinibatchStdLayer``) compares each image with the others of its group
    of ``config.mbstd_group_size`` (4 unless a checkpoint says otherwise; ``None``: the whole batch), so the logits
    are the ones training shaped only for B divisible by the group size (or below it: one group of B); any other B
    falls back to groups of 1, a constant stddev feature the network never saw (logits on 50 faces can sit a whole
    unit away from those on 40). The residual blocks' ``features`` come before that layer and do not depend on B.
    """

    config_class = StyleGAN2DiscriminatorConfig
    main_input_name = "images"
    base_model_prefix = "stylegan2_discriminator"

    def __init__(self, config: StyleGAN2DiscriminatorConfig):
        super().__init__(config)
        c = config
        self.size = c.size
        blur = c.blur_kernel
        clamp = c.conv_clamp  # NVIDIA clamps fromrgb, the blocks' convs and the epilogue conv; not the fc layers
        convs: list[nn.Module] = [ConvLayer(3, c.channel(c.size), 1, clamp=clamp)]
        in_channel = c.channel(c.size)
        for res in reversed(c.resolutions[1:]):
            out_channel = c.channel(res // 2)
            convs.append(ResBlock(in_channel, out_channel, blur, conv_clamp=clamp))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = c.mbstd_group_size
        self.stddev_feat = c.mbstd_num_channels
        self.final_conv = ConvLayer(in_channel + self.stddev_feat, c.channel(4), 3, clamp=clamp)
        self.final_linear = nn.Sequential(
            EqualLinear(c.channel(4) * 4 * 4, c.channel(4), activation="fused_lrelu"),
            EqualLinear(c.channel(4), 1),
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        init_stylegan2_module(module)

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, mbstd_num_channels, H, W) stddev features of NVIDIA's ``MinibatchStdLayer`` for ``x`` (B, C, H, W).

        Groups of G = min(mbstd_group_size, B) images (B with ``None``): image i is grouped with those whose index
        is i modulo B / G; each of the F channel groups gets the mean over its channels and pixels of the stddev
        over the group. A B that G does not divide (where NVIDIA's reshape fails) takes G = 1.
        """
        batch, channel, height, width = x.shape
        group = batch if self.stddev_group is None else min(batch, self.stddev_group)
        if batch % group:
            group = 1
        feat = self.stddev_feat
        y = x.reshape(group, -1, feat, channel // feat, height, width)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
        y = y.mean([2, 3, 4]).reshape(-1, feat, 1, 1)
        return y.repeat(group, 1, height, width)

    def forward(self, images: torch.Tensor, return_features: bool = False,
                return_dict: bool = True) -> DiscriminatorOutput:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] != self.size or images.shape[-2] != self.size:
            raise ValueError(f"images must be (B, 3, {self.size}, {self.size}), got {tuple(images.shape)}")
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        out = images
        for i, layer in enumerate(self.convs):
            out = layer(out)
            if return_features:
                features[f"convs.{i}"] = out
        batch = out.shape[0]
        if self.stddev_feat:
            out = torch.cat([out, self.minibatch_stddev(out)], 1)
        out = self.final_conv(out)
        logits = self.final_linear(out.view(batch, -1))
        result = DiscriminatorOutput(logits=logits, features=features if return_features else None)
        return result if return_dict else result.to_tuple()
