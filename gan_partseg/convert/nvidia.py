"""Import NVIDIA ``stylegan2-ada-pytorch`` network pickles without running code from the file.

An NVIDIA ``network-snapshot-*.pkl`` is a plain pickle of ``{"G", "D", "G_ema", "augment_pipe",
"training_set_kwargs", ...}`` whose networks are "persistent" objects: each carries the *source
code* of its module and is rebuilt by ``torch_utils.persistence._reconstruct_persistent_obj``,
which executes that source. Loading one with ``pickle.load`` runs whatever code it holds.

:func:`load_nvidia_pickle` uses a restricted reader instead. It resolves only an allow-list of
globals, and none of them executes anything from the file:

* ``torch_utils.persistence._reconstruct_persistent_obj`` -> :class:`PersistedModule`, which keeps
  the class name and the object's state (parameters, buffers, child modules) and **ignores the
  module source**;
* tensor rebuilding (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``) with storages
  read by ``torch.load(weights_only=True)``;
* plain containers (``collections.OrderedDict``, ``builtins.set``), ``dnnlib.util.EasyDict``
  (read as a dict), ``copyreg._reconstructor`` for stand-ins of ``torch.nn`` containers;
* NumPy arrays, scalars and dtypes as numpy 1.x pickled them (``numpy.core.multiarray._reconstruct`` /
  ``scalar``, ``numpy.ndarray``, ``numpy.dtype``; numpy 2's ``numpy._core`` spelling too), of plain numeric
  dtypes only, through checked stand-ins for numpy's reconstructors (a forged dtype state could otherwise
  declare object fields and have raw file bytes read as object pointers): the published pickles (torch
  1.7-1.9, numpy 1.x) hold such values in every layer's state (``weight_gain``, ``act_gain``) and in
  ``training_set_kwargs`` / ``augment_pipe``;
* ``_codecs.encode`` for latin-1 text only, which is how protocol 2 writes ``bytes`` (nothing else is encoded).

The pickle is read by :func:`gan_partseg.convert.unpickle.restricted_load`, an opcode interpreter
of its own (the ``pickle`` module is not used). Anything else (``os.system``, ``builtins.eval``, another
library's class, a persistent id ...) is refused with :class:`gan_partseg.convert.CheckpointError`
before it is called. The networks' tensors are then
renamed onto the rosinality layout (the mapping below) and checked key by key like a ``.pt`` file.

Besides tensors, both networks' ``conv_clamp`` (256 in NVIDIA's training configs, None with ``--fp32``) is read off
the layers that clamp (see :func:`network_conv_clamp`) into the configs, and the discriminator's minibatch-stddev
settings are read off the data (``mbstd_group_size``,
``mbstd_num_channels``: 4 and 1 in the ``auto`` config, a group of 8 in ``paper256`` / ``paper512``) into
:class:`~gan_partseg.models.stylegan2.StyleGAN2DiscriminatorConfig`. StyleGAN3 pickles (``networks_stylegan3``:
a ``SynthesisInput`` and alias-free ``SynthesisLayer`` modules) are refused by name before anything is renamed.
"""

from __future__ import annotations

import collections
import copyreg
import importlib
import io
import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gan_partseg.convert.rosinality import (
    CheckpointError,
    build_from_state_dict,
    infer_discriminator_config,
    infer_generator_config,
    save_converted,
)
from gan_partseg.convert.unpickle import restricted_load
from gan_partseg.errors import ArgumentError, MissingFileError
from gan_partseg.files import check_output
from gan_partseg.models.ops import make_kernel
from gan_partseg.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, StyleGAN2Generator


class PersistedModule:
    """What the restricted unpickler makes of an NVIDIA persistent network object: data, no code."""

    def __init__(self, class_name: str = "?", state: Mapping | None = None):
        self.class_name = class_name
        self.state = dict(state or {})

    def __setstate__(self, state):  # plain torch.nn containers pickled by copyreg
        self.state = dict(state) if isinstance(state, Mapping) else {"_state": state}

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """``state_dict``-style names -> tensors: parameters, persistent buffers, children (recursively)."""
        out: dict[str, torch.Tensor] = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for name, t in (self.state.get(group) or {}).items():
                if t is not None and name not in skip:
                    out[prefix + name] = torch.as_tensor(t).detach()
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistedModule):
                out.update(child.named_tensors(f"{prefix}{name}."))
        return out

    def __repr__(self) -> str:
        return f"PersistedModule({self.class_name})"


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        raise CheckpointError("unexpected persistent-object record in the pickle (not an NVIDIA network?)")
    return PersistedModule(str(meta.get("class_name", "?")), meta.get("state") or {})


def _load_storage(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_parameter(data, requires_grad, backward_hooks, *_):
    return torch.nn.Parameter(data, requires_grad=False)


class _EasyDict(dict):
    pass


def _module_stand_in(name: str) -> type:
    return type(name, (PersistedModule,), {})


# What numpy's own __reduce__ methods name: numpy 1.x wrote numpy.core.multiarray, numpy 2 writes numpy._core.multiarray.
_NUMPY = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
          ("numpy._core.multiarray", "scalar")}


def _numpy_core(name: str) -> Any:
    """The installed numpy's ``_reconstruct`` / ``scalar``, whichever spelling the pickle used: ``numpy.core`` is only a
    deprecation shim in numpy 2, ``numpy._core`` absent from older 1.x."""
    import numpy

    core = "numpy._core.multiarray" if int(numpy.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
    return getattr(importlib.import_module(core), name)


#: bool, signed / unsigned integers, floats, complex: dtypes whose values are plain bytes, never object pointers
_PLAIN_KINDS = frozenset("biufc")


def _refuse_numpy(what: str) -> CheckpointError:
    return CheckpointError(f"refused a NumPy {what}: only plain numeric dtypes (bool, int, uint, float, complex) are "
                           "read from a pickle; nothing from the pickle was executed")


def _plain_dtype(spec: Any, align: Any = False, copy: Any = False) -> Any:
    """``numpy.dtype(spec, align, copy)`` for plain numeric specs only (``"f4"``, ``"i8"``, ``"b1"`` ...).

    Why not numpy's own: a dtype's BUILD state can declare object fields while its flags say it holds none,
    and arrays or scalars of it then read Python object pointers from the file (a crash at best)."""
    import numpy

    if not isinstance(spec, str) or not re.fullmatch(r"[<>|=]?[biufc?]\d{0,2}", spec):
        raise _refuse_numpy(f"dtype {spec!r}")
    dt = numpy.dtype(spec)
    if dt.kind not in _PLAIN_KINDS:
        raise _refuse_numpy(f"dtype {spec!r}")
    return numpy.dtype(spec, bool(align), True)  # always a copy: BUILD must never touch numpy's own dtype objects


def _check_numpy_build(inst: Any, state: Any) -> None:
    """Refuse BUILD states that would make a plain dtype or array hold anything but plain numbers."""
    import numpy

    if isinstance(inst, numpy.dtype):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        plain = (isinstance(state, tuple) and len(state) in (8, 9) and state[2] is None and state[3] is None
                 and state[4] is None and state[7] == 0 and state[1] in ("<", ">", "|", "="))
        if not plain or inst.kind not in _PLAIN_KINDS:
            raise _refuse_numpy("dtype state (fields, subarrays or flags)")
    elif isinstance(inst, numpy.ndarray):
        # (version, shape, dtype, is_fortran, raw bytes); a list instead of bytes is how object arrays pickle
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], numpy.dtype)
                and state[2].kind in _PLAIN_KINDS and isinstance(state[4], bytes)):
            raise _refuse_numpy("array state (an object array, or a dtype not read as plain)")


def _plain_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> Any:
    """numpy's ``_reconstruct`` for a plain ``ndarray`` (its data arrives in the BUILD state)."""
    import numpy

    if subtype is not numpy.ndarray:
        raise _refuse_numpy(f"array subtype {subtype!r}")
    return _numpy_core("_reconstruct")(subtype, shape, dtype_code)


def _plain_scalar(dtype: Any, raw: Any = None) -> Any:
    """numpy's ``scalar(dtype, raw bytes)`` for a plain dtype (an object dtype would take a Python object)."""
    import numpy

    if not isinstance(dtype, numpy.dtype) or dtype.kind not in _PLAIN_KINDS or not isinstance(raw, bytes):
        raise _refuse_numpy("scalar (not plain bytes of a plain dtype)")
    return _numpy_core("scalar")(dtype, raw)


_NUMPY_GLOBALS = {"_reconstruct": _plain_reconstruct, "scalar": _plain_scalar, "dtype": _plain_dtype}


def _latin1_encode(text: Any, encoding: str = "utf-8", *_: Any) -> bytes:
    """Protocol 2 writes ``bytes`` as ``_codecs.encode(text, "latin1")``; only that is allowed here."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):  # no codec lookup by the file's name
        raise CheckpointError(f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1 text "
                              "(protocol 2 bytes) is decoded; nothing from the pickle was executed")
    return text.encode("latin-1")


def _allowed(module: str, name: str) -> Any:
    table: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "object"): object,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("dnnlib", "EasyDict"): _EasyDict,
        ("_codecs", "encode"): _latin1_encode,
    }
    if (module, name) in table:
        return table[(module, name)]
    if (module, name) in _NUMPY:  # checked stand-ins: plain numeric dtypes, arrays and scalars from raw bytes only
        import numpy

        return numpy.ndarray if name == "ndarray" else _NUMPY_GLOBALS[name]
    if module.startswith("torch.nn.modules.") and re.fullmatch(r"[A-Z]\w*", name):
        return _module_stand_in(name)  # data only: never the real class
    if module == "torch" and re.fullmatch(r"\w+Storage|float\d*|bfloat16|half|int\d+|uint8|bool", name):
        return getattr(torch, name)
    return None


def _find_class(module: str, name: str):
    found = _allowed(module, name)
    if found is None and module.startswith("training.networks_stylegan3"):
        raise CheckpointError(stylegan3_message("the pickle", f"it asks for {module}.{name}; nothing from it was executed"))
    if found is None:
        raise CheckpointError(
            f"refused to load: the pickle asks for {module}.{name}, which is not on the allow-list "
            "(tensors, containers, NVIDIA persistent networks as data). Loading it normally could run "
            "code from the file; nothing from it was executed."
        )
    return found


def load_nvidia_pickle(path: str | os.PathLike) -> dict:
    """Read a ``stylegan2-ada-pytorch`` pickle as data: networks become :class:`PersistedModule`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"pickle not found: {path}")
    try:
        with open(path, "rb") as f:
            data = restricted_load(f, _find_class, check_build=_check_numpy_build)
    except CheckpointError:
        raise
    except Exception as err:  # truncated, not a pickle, a torch zip file, a refused opcode (UnpicklingRefused) ...
        raise CheckpointError(f"{path} is not a readable network pickle (corrupt, truncated, or another "
                              f"format? a rosinality .pt converts with `gan-partseg convert rosinality`): "
                              f"{type(err).__name__}: {err}") from None
    if not isinstance(data, Mapping) or not any(isinstance(data.get(k), PersistedModule) for k in ("G_ema", "G")):
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"{path} holds no NVIDIA generator ('G_ema' or 'G'; found {found})")
    return dict(data)


# ---------------------------------------------------------------------------------------------
# StyleGAN3 (NVlabs/stylegan3, training/networks_stylegan3.py): same mapping network, but the synthesis network
# starts from Fourier features (``synthesis.input``, a SynthesisInput) and runs alias-free SynthesisLayers
# (``synthesis.L0_36_512`` ...) that carry is_torgb / is_critically_sampled / use_fp16. Nothing of it maps.

_SG3_LAYER_ATTRS = ("is_torgb", "is_critically_sampled")  # use_fp16 alone is no evidence: SG2 blocks have it too
_SG3_KEY = re.compile(r"synthesis\.(input\.(freqs|phases|transform)|L\d+_\d+_\d+\.)")


def stylegan3_message(where: str, evidence: str) -> str:
    """The one-line refusal of a StyleGAN3 checkpoint (``where``: the file, ``evidence``: what gave it away)."""
    return (f"{where} is a StyleGAN3 checkpoint ({evidence}): gan_partseg reads StyleGAN2 checkpoints only "
            "(stylegan2-ada-pytorch network pickles, rosinality .pt files), and StyleGAN3's alias-free layers "
            "have no StyleGAN2 counterpart to convert to. Use a StyleGAN2 network of the same data instead "
            "(or train one with stylegan2-ada-pytorch) and convert that")


def stylegan3_evidence(network: PersistedModule) -> str | None:
    """What marks ``network`` as a StyleGAN3 generator (its modules, then its tensor names), or None."""
    synthesis = (network.state.get("_modules") or {}).get("synthesis")
    children = (synthesis.state.get("_modules") or {}) if isinstance(synthesis, PersistedModule) else {}
    first = children.get("input")
    if isinstance(first, PersistedModule) and first.class_name == "SynthesisInput":
        return "its synthesis.input is a SynthesisInput"
    for name, child in children.items():
        if isinstance(child, PersistedModule) and any(a in child.state for a in _SG3_LAYER_ATTRS):
            return f"its synthesis.{name} is an alias-free {child.class_name} (is_torgb, is_critically_sampled)"
    key = next((k for k in network.named_tensors() if _SG3_KEY.match(k)), None)
    return None if key is None else f"it has {key}"


# ---------------------------------------------------------------------------------------------
# Key mapping: NVIDIA name -> rosinality name. Values differ only in shape (NVIDIA drops the
# leading 1 of modulated weights, the constant input and the noise maps), so the inverse used to
# write test fixtures is a reshape back. Both repos convert the same official TF weights with the
# same conventions (the up-conv kernel flipped, modulation bias + 1), so no value changes.

_TORGB_BIAS = re.compile(r"to_rgb(1|s\.\d+)\.bias")


def generator_key_map(size: int, n_mlp: int) -> dict[str, str]:
    """NVIDIA generator key -> rosinality key (for a ``size`` px, ``n_mlp``-layer generator)."""
    m = {"mapping.w_avg": "latent_avg", "synthesis.b4.const": "input.input"}
    for i in range(n_mlp):
        m[f"mapping.fc{i}.weight"] = f"style.{i + 1}.weight"
        m[f"mapping.fc{i}.bias"] = f"style.{i + 1}.bias"

    def layer(nv: str, ro: str, noise: int | None):
        m[f"{nv}.weight"] = f"{ro}.conv.weight"
        m[f"{nv}.affine.weight"] = f"{ro}.conv.modulation.weight"
        m[f"{nv}.affine.bias"] = f"{ro}.conv.modulation.bias"
        if noise is None:  # ToRGB
            m[f"{nv}.bias"] = f"{ro}.bias"
        else:
            m[f"{nv}.bias"] = f"{ro}.activate.bias"
            m[f"{nv}.noise_strength"] = f"{ro}.noise.weight"
            m[f"{nv}.noise_const"] = f"noises.noise_{noise}"

    layer("synthesis.b4.conv1", "conv1", 0)
    layer("synthesis.b4.torgb", "to_rgb1", None)
    k, r = 0, 8
    while r <= size:
        layer(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1)
        layer(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        layer(f"synthesis.b{r}.torgb", f"to_rgbs.{k}", None)
        k, r = k + 1, r * 2
    return m


def discriminator_key_map(size: int) -> dict[str, str]:
    """NVIDIA (resnet) discriminator key -> rosinality key."""
    m = {f"b{size}.fromrgb.weight": "convs.0.0.weight", f"b{size}.fromrgb.bias": "convs.0.1.bias",
         "b4.conv.weight": "final_conv.0.weight", "b4.conv.bias": "final_conv.1.bias",
         "b4.fc.weight": "final_linear.0.weight", "b4.fc.bias": "final_linear.0.bias",
         "b4.out.weight": "final_linear.1.weight", "b4.out.bias": "final_linear.1.bias"}
    i, r = 1, size
    while r > 4:
        m[f"b{r}.conv0.weight"] = f"convs.{i}.conv1.0.weight"
        m[f"b{r}.conv0.bias"] = f"convs.{i}.conv1.1.bias"
        m[f"b{r}.conv1.weight"] = f"convs.{i}.conv2.1.weight"
        m[f"b{r}.conv1.bias"] = f"convs.{i}.conv2.2.bias"
        m[f"b{r}.skip.weight"] = f"convs.{i}.skip.1.weight"
        i, r = i + 1, r // 2
    return m


def _infer_generator_shape(sd: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    sg3 = next((k for k in sd if _SG3_KEY.match(k) or k.startswith("synthesis.input.")), None)
    if sg3 is not None:  # before the generic check, whose message would not say what the file is
        raise CheckpointError(stylegan3_message("this generator", f"it has {sg3}"))
    blocks = [int(m.group(1)) for k in sd if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", k))]
    fcs = [int(m.group(1)) for k in sd if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k))]
    if not blocks or not fcs or "synthesis.b4.const" not in sd:
        raise CheckpointError("not a StyleGAN2 generator of stylegan2-ada-pytorch: no mapping.fc*/synthesis.b*.torgb "
                              f"keys (found e.g. {sorted(sd)[:5]})")
    if any(k.startswith("mapping.embed") for k in sd):
        raise CheckpointError("a class-conditional generator (mapping.embed): not supported; "
                              "part segmentation needs an unconditional StyleGAN2")
    return max(blocks), max(fcs) + 1


def _check_keys(sd: Mapping[str, torch.Tensor], key_map: Mapping[str, str], ignored: str, what: str) -> None:
    """Every key of ``sd`` is mapped or ignored (a regex), and every mapped key is there; else name them."""
    skip = re.compile(ignored)
    unknown = [k for k in sd if k not in key_map and not skip.fullmatch(k)]
    missing = [k for k in key_map if k not in sd]
    if unknown or missing:
        raise CheckpointError(f"{what}: unmapped keys {unknown[:8]}; missing keys {missing[:8]}")


def nvidia_generator_to_rosinality(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and reshape) an NVIDIA generator's tensors onto rosinality keys; names what is left over."""
    size, n_mlp = _infer_generator_shape(sd)
    key_map = generator_key_map(size, n_mlp)
    _check_keys(sd, key_map, r".*\.resample_filter|synthesis\.b\d+\.skip\.weight",
                "the generator does not match the StyleGAN2 (skip architecture) layout")
    out: dict[str, torch.Tensor] = {}
    for nv, ro in key_map.items():
        t = sd[nv].float()
        if ro == "input.input" or ro.endswith(".conv.weight"):
            t = t[None]
        elif ro.endswith(".noise.weight"):
            t = t.reshape(1)
        elif ro.startswith("noises."):
            t = t.reshape(1, 1, *t.shape[-2:])
        elif _TORGB_BIAS.fullmatch(ro):
            t = t.reshape(1, -1, 1, 1)
        out[ro] = t
    taps = _filter_taps(sd)
    kernel = make_kernel(taps)
    for k in range(len([n for n in out if re.fullmatch(r"to_rgbs\.\d+\.bias", n)])):
        out[f"convs.{2 * k}.conv.blur.kernel"] = kernel * 4  # the up-conv's blur carries the factor**2 gain
        out[f"to_rgbs.{k}.upsample.kernel"] = kernel * 4
    return out


def _filter_taps(sd: Mapping[str, torch.Tensor]) -> list[float]:
    f = next((v for k, v in sd.items() if k.endswith("resample_filter")), None)
    if f is None:
        return [1, 3, 3, 1]
    f = f.double()
    taps = (f.sum(0) if f.ndim == 2 else f)
    taps = taps / taps.min()
    return [int(round(t)) if abs(t - round(t)) < 1e-4 else float(t) for t in taps.tolist()]


def nvidia_discriminator_to_rosinality(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an NVIDIA resnet discriminator's tensors onto rosinality keys."""
    blocks = [int(m.group(1)) for k in sd if (m := re.fullmatch(r"b(\d+)\.fromrgb\.weight", k))]
    if len(blocks) != 1 or any(k.startswith("mapping.") for k in sd):
        raise CheckpointError("the discriminator is not an unconditional resnet StyleGAN2 discriminator "
                              "(expected exactly one fromrgb and no mapping network)")
    size = blocks[0]
    key_map = discriminator_key_map(size)
    _check_keys(sd, key_map, r".*\.resample_filter", "the discriminator does not match the StyleGAN2 resnet layout")
    out = {ro: sd[nv].float() for nv, ro in key_map.items()}
    kernel = make_kernel(_filter_taps(sd))
    i = 1
    while f"convs.{i}.conv1.0.weight" in out:
        out[f"convs.{i}.conv2.0.kernel"] = kernel.clone()
        out[f"convs.{i}.skip.0.kernel"] = kernel.clone()
        i += 1
    return out


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        return None
    return as_int if as_int == value else None


def discriminator_mbstd(d: PersistedModule) -> tuple[int | None, int]:
    """``(mbstd_group_size, mbstd_num_channels)`` of an NVIDIA discriminator, read off the pickle's data.

    First what runs, the epilogue's ``MinibatchStdLayer`` (``b4.mbstd.group_size`` / ``num_channels``; ``b4.mbstd``
    None: no layer, 0 channels), then what built it (``b4``'s ``mbstd_*`` attributes or init kwargs, then the
    discriminator's ``init_kwargs.epilogue_kwargs``), else NVIDIA's defaults (4, 1). The channels are checked
    against the width of ``b4.conv.weight``, which holds them; a pickle that names none takes them from there.
    """
    def mapping(x: Any) -> Mapping:
        return x if isinstance(x, Mapping) else {}

    epilogue = mapping(d.state.get("_modules")).get("b4")
    epi_state = epilogue.state if isinstance(epilogue, PersistedModule) else {}
    epi_modules = mapping(epi_state.get("_modules"))
    layer = epi_modules.get("mbstd")
    sources = [(layer.state if isinstance(layer, PersistedModule) else {}, "group_size", "num_channels")]
    sources += [(src, "mbstd_group_size", "mbstd_num_channels") for src in (
        epi_state, mapping(epi_state.get("_init_kwargs")),
        mapping(mapping(d.state.get("_init_kwargs")).get("epilogue_kwargs")))]
    raw_group = next((src[g] for src, g, _ in sources if g in src), 4)
    raw_channels = 0 if "mbstd" in epi_modules and layer is None else next(
        (src[f] for src, _, f in sources if f in src), None)
    group = None if raw_group is None else _integer(raw_group)
    if raw_group is not None and (group is None or group < 1):
        raise CheckpointError(f"the discriminator's mbstd_group_size is {raw_group!r}, "
                              "not a positive integer or None (the whole batch)")
    channels = None if raw_channels is None else _integer(raw_channels)
    if raw_channels is not None and (channels is None or channels < 0):
        raise CheckpointError(f"the discriminator's mbstd_num_channels is {raw_channels!r}, not an integer >= 0")
    weight = epilogue.named_tensors().get("conv.weight") if isinstance(epilogue, PersistedModule) else None
    if weight is not None and weight.ndim == 4:
        width = int(weight.shape[1] - weight.shape[0])  # b4.conv: in_channels + mbstd_num_channels -> in_channels
        if channels is None:
            channels = width
        elif channels != width:
            raise CheckpointError(f"the discriminator's minibatch-stddev layer has {channels} channel(s) but "
                                  f"b4.conv.weight {tuple(weight.shape)} takes {width}: the pickle is inconsistent")
    return group, 1 if channels is None else channels


def _submodule(network: PersistedModule, dotted: str) -> PersistedModule | None:
    node: Any = network
    for part in dotted.split("."):
        children = node.state.get("_modules") if isinstance(node, PersistedModule) else None
        node = children.get(part) if isinstance(children, Mapping) else None
    return node if isinstance(node, PersistedModule) else None


def _clamp_value(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real) or not 0 <= float(raw) < math.inf:
        raise CheckpointError(f"{where} is {raw!r}, not None or a finite number >= 0")
    return float(raw)


def generator_clamp_layers(size: int) -> list[str]:
    """The NVIDIA generator layers built with ``conv_clamp``: every SynthesisLayer and ToRGBLayer."""
    names = ["synthesis.b4.conv1", "synthesis.b4.torgb"]
    for r in [2**i for i in range(3, size.bit_length())]:
        names += [f"synthesis.b{r}.conv0", f"synthesis.b{r}.conv1", f"synthesis.b{r}.torgb"]
    return names


def discriminator_clamp_layers(size: int) -> list[str]:
    """The NVIDIA (resnet) discriminator layers built with ``conv_clamp``: fromrgb, each block's conv0 / conv1 and
    the epilogue's conv. The blocks' ``skip`` and the epilogue's ``fc`` / ``out`` are built without it."""
    names = [f"b{size}.fromrgb"]
    for r in [2**i for i in range(size.bit_length() - 1, 2, -1)]:
        names += [f"b{r}.conv0", f"b{r}.conv1"]
    return names + ["b4.conv"]


_MISSING = object()
# Where NVIDIA's constructors record the value (train.py sets G_kwargs.synthesis_kwargs.conv_clamp, which the synthesis
# network's own init kwargs repeat, and D_kwargs.conv_clamp): (submodule, path into its ``_init_kwargs``).
GENERATOR_CLAMP_KWARGS = (("", "synthesis_kwargs.conv_clamp"), ("synthesis", "conv_clamp"))
DISCRIMINATOR_CLAMP_KWARGS = (("", "conv_clamp"),)


def network_conv_clamp(network: PersistedModule, layers: Sequence[str], kwarg_sources: Sequence[tuple[str, str]],
                       what: str) -> float | None:
    """``conv_clamp`` of an NVIDIA network, read off the pickle's data (None: no clamp).

    First what runs: the ``conv_clamp`` attribute of each of ``layers`` (SynthesisLayer, ToRGBLayer and Conv2dLayer
    keep it), which must agree, as one config value stands for them all. A pickle whose layers hold none (bare
    tensors) falls back to what built them: the first of ``kwarg_sources`` (a submodule, "" for the network, and a
    dotted path into its ``_init_kwargs``, e.g. ``synthesis_kwargs.conv_clamp``) that is there, else None.
    """
    found: dict[str, float | None] = {}
    for name in layers:
        layer = _submodule(network, name)
        if layer is not None and "conv_clamp" in layer.state:
            found[name] = _clamp_value(layer.state["conv_clamp"], f"{what}: {name}.conv_clamp")
    values = set(found.values())
    if len(values) > 1:
        detail = ", ".join(f"{name}={value}" for name, value in list(found.items())[:6])
        raise CheckpointError(f"{what}: its layers clamp differently ({detail}); one conv_clamp per network is supported")
    if values:
        return values.pop()
    for module, path in kwarg_sources:
        owner = _submodule(network, module) if module else network
        node: Any = owner.state.get("_init_kwargs") if owner is not None else None
        for part in path.split("."):
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node is not _MISSING:
            return _clamp_value(node, f"{what}: {module + '.' if module else ''}_init_kwargs.{path}")
    return None


def nvidia_discriminator(d: PersistedModule, generator_config, what: str) -> StyleGAN2Discriminator:
    """The discriminator of an NVIDIA pickle: tensors renamed, minibatch-stddev settings and conv_clamp from the pickle."""
    dsd = nvidia_discriminator_to_rosinality(d.named_tensors())
    inferred = infer_discriminator_config(dsd, blur_kernel=generator_config.blur_kernel)
    if inferred.size != generator_config.size:
        raise CheckpointError(f"discriminator is {inferred.size} px but the generator is {generator_config.size} px")
    group, channels = discriminator_mbstd(d)
    clamp = network_conv_clamp(d, discriminator_clamp_layers(inferred.size), DISCRIMINATOR_CLAMP_KWARGS, what)
    try:
        config = StyleGAN2DiscriminatorConfig(size=inferred.size, channel_multiplier=inferred.channel_multiplier,
                                              blur_kernel=inferred.blur_kernel, channels=inferred.channels,
                                              mbstd_group_size=group, mbstd_num_channels=channels, conv_clamp=clamp)
    except ArgumentError as err:
        raise CheckpointError(f"{what}: {err}") from None
    return build_from_state_dict(StyleGAN2Discriminator, config, dsd, what)


def rosinality_to_nvidia(sd: Mapping[str, torch.Tensor], key_map: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The inverse renaming (for building NVIDIA-layout fixtures): shapes squeezed back as NVIDIA stores them."""
    out = {}
    for nv, ro in key_map.items():
        t = sd[ro]
        if ro == "input.input" or ro.endswith(".conv.weight"):
            t = t[0]
        elif ro.endswith(".noise.weight"):
            t = t.reshape(())
        elif ro.startswith("noises."):
            t = t[0, 0]
        elif _TORGB_BIAS.fullmatch(ro):
            t = t.reshape(-1)
        out[nv] = t.clone()
    return out


def convert_nvidia(pkl_path: str | os.PathLike, out_dir: str | os.PathLike, network: str = "G_ema",
                   discriminator: bool = False, overwrite: bool = True) -> Path:
    """Convert an NVIDIA pickle's generator (``G_ema`` by default) into a model folder (+ ``discriminator/``);
    ``out_dir`` is checked as in :func:`convert_rosinality` before the pickle is read."""
    check_output(out_dir, "model folder", overwrite)
    data = load_nvidia_pickle(pkl_path)
    if not isinstance(data.get(network), PersistedModule):
        raise CheckpointError(f"{pkl_path} has no network {network!r} (found {sorted(data)})")
    evidence = stylegan3_evidence(data[network])
    if evidence is not None:  # before the StyleGAN2 key checks, whose message would not say what the file is
        raise CheckpointError(stylegan3_message(str(pkl_path), evidence))
    sd = nvidia_generator_to_rosinality(data[network].named_tensors())
    latent_avg = sd.pop("latent_avg")
    config = infer_generator_config(sd)
    config.has_latent_avg = True
    what = f"{pkl_path} [{network!r}]"
    config.conv_clamp = network_conv_clamp(data[network], generator_clamp_layers(config.size),
                                           GENERATOR_CLAMP_KWARGS, what)  # checked there, as __post_init__ would
    sd["latent_avg"] = latent_avg.reshape(-1)
    generator = build_from_state_dict(StyleGAN2Generator, config, sd, what)
    disc = None
    if discriminator:
        if not isinstance(data.get("D"), PersistedModule):
            raise CheckpointError(f"{pkl_path} holds no discriminator 'D'")
        disc = nvidia_discriminator(data["D"], config, f"{pkl_path} ['D']")
    return save_converted(generator, disc, out_dir, str(pkl_path), "nvidia", overwrite)
