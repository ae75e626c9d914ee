"""NVIDIA stylegan2-ada-pytorch pickles: built here with the real structure, read without running code."""

import collections
import json
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_partseg import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, StyleGAN2Generator
from gan_partseg.cli import main as cli_main
from gan_partseg.convert.nvidia import (
    PersistedModule,
    convert_nvidia,
    discriminator_clamp_layers,
    discriminator_key_map,
    generator_clamp_layers,
    generator_key_map,
    load_nvidia_pickle,
    rosinality_to_nvidia,
)
from gan_partseg.convert.rosinality import CheckpointError
from tests.conftest import TINY_CHANNELS

SOURCE_RAN = []


@pytest.fixture
def fake_persistence(monkeypatch, tmp_path):
    """A stand-in ``torch_utils.persistence`` so the test can *write* pickles of NVIDIA's structure.

    Like the real one, every persistent object pickles as ``_reconstruct_persistent_obj(meta)`` with its
    module source in ``meta``; here that source would leave a marker file when executed.
    """
    marker = tmp_path / "source-was-executed"
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # what NVIDIA's loader does: exec the source (never called here)
        SOURCE_RAN.append(meta)
        exec(meta["module_src"], {})

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg = types.ModuleType("torch_utils")
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    src = f"open({str(marker)!r}, 'w').write('ran')\n"

    class Persistent:
        """``attrs``: the module's other ``__dict__`` entries (NVIDIA's ``_init_args`` / ``_init_kwargs``, plain
        attributes such as ``group_size`` or ``is_torgb``), pickled in its state as the real persistence does."""

        def __init__(self, class_name, params=None, buffers=None, modules=None, attrs=None):
            self.class_name = class_name
            self.state = {"training": False,
                          "_parameters": collections.OrderedDict((k, torch.nn.Parameter(v)) for k, v in (params or {}).items()),
                          "_buffers": collections.OrderedDict(buffers or {}),
                          "_non_persistent_buffers_set": set(),
                          "_modules": collections.OrderedDict(modules or {}),
                          **(attrs or {})}

        def __reduce__(self):
            meta = {"type": "class", "version": 4, "module_src": src, "class_name": self.class_name,
                    "state": self.state}
            return (_reconstruct_persistent_obj, (meta,))

    return Persistent, marker


def _tree(Persistent, flat: dict[str, torch.Tensor], class_name: str):
    """Nest 'a.b.c' tensors into Persistent modules (names ending in const/w_avg/noise_const are buffers)."""
    root: dict = {}
    for key, t in flat.items():
        *path, leaf = key.split(".")
        node = root
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = t

    def build(name, node):
        params = {k: v for k, v in node.items() if isinstance(v, torch.Tensor) and k not in ("w_avg", "noise_const",
                                                                                          "resample_filter")}
        buffers = {k: v for k, v in node.items() if isinstance(v, torch.Tensor) and k in ("w_avg", "noise_const",
                                                                                          "resample_filter")}
        mods = {k: build(k, v) for k, v in node.items() if isinstance(v, dict)}
        return Persistent(name, params, buffers, mods)

    return build(class_name, root)


class _EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict``, like the kwargs NVIDIA's networks record (see _easydict_module)."""


_EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"


@pytest.fixture(autouse=True)
def _easydict_module(monkeypatch):
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = _EasyDict
    pkg = types.ModuleType("dnnlib")
    pkg.util = util
    monkeypatch.setitem(sys.modules, "dnnlib", pkg)
    monkeypatch.setitem(sys.modules, "dnnlib.util", util)


def _discriminator_tree(Persistent, d: StyleGAN2Discriminator, mbstd):
    """D as stylegan2-ada-pytorch pickles it. ``mbstd`` = (group size, channels): the discriminator's
    ``init_kwargs.epilogue_kwargs``, the epilogue ``b4``'s init kwargs, and its ``MinibatchStdLayer`` child
    ``b4.mbstd`` (attributes ``group_size``, ``num_channels``; no tensors) all carry them. None: none of that
    (the bare tensors of the older fixtures)."""
    tree = _tree(Persistent, rosinality_to_nvidia(dict(d.state_dict()), discriminator_key_map(d.config.size)),
                 "Discriminator")
    if mbstd is None:
        return tree
    group, channels = mbstd
    c4 = d.config.channel(4)
    tree.state["_init_args"] = ()
    tree.state["_init_kwargs"] = _EasyDict(c_dim=0, img_resolution=d.config.size, img_channels=3, architecture="resnet",
                                           channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256,
                                           epilogue_kwargs=_EasyDict(mbstd_group_size=group))
    b4 = tree.state["_modules"]["b4"]
    b4.state.update(in_channels=c4, cmap_dim=0, resolution=4, img_channels=3, architecture="resnet",
                    _init_args=(c4,), _init_kwargs=dict(cmap_dim=0, resolution=4, mbstd_group_size=group,
                                                        mbstd_num_channels=channels, img_channels=3,
                                                        architecture="resnet", conv_clamp=256))
    layer = None if channels == 0 else Persistent(  # NVIDIA: self.mbstd = None when mbstd_num_channels is 0
        "MinibatchStdLayer", attrs={"group_size": group, "num_channels": channels, "_init_args": (),
                                    "_init_kwargs": {"group_size": group, "num_channels": channels}})
    b4.state["_modules"] = collections.OrderedDict([("mbstd", layer), *b4.state["_modules"].items()])
    return tree


_NO_RECORD = object()


def _record_conv_clamp(g_tree, d_tree, size: int, value, on_layers: bool = True):
    """Record ``conv_clamp`` as stylegan2-ada-pytorch's pickles hold it: the G's ``_init_kwargs.synthesis_kwargs`` and
    its synthesis network's ``_init_kwargs``, D's ``_init_kwargs``, and (``on_layers``) the ``conv_clamp`` attribute of
    every SynthesisLayer / ToRGBLayer / Conv2dLayer; D's skip convs are built without it (None)."""
    g_tree.state["_init_kwargs"] = _EasyDict(z_dim=32, c_dim=0, w_dim=32, img_resolution=size, img_channels=3,
                                             mapping_kwargs=_EasyDict(num_layers=2), synthesis_kwargs=_EasyDict(
                                                 channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=value))
    synthesis = g_tree.state["_modules"]["synthesis"]
    synthesis.state["_init_kwargs"] = dict(w_dim=32, img_resolution=size, img_channels=3, channel_base=16384,
                                           channel_max=512, num_fp16_res=4, conv_clamp=value)
    kwargs = d_tree.state.setdefault("_init_kwargs", _EasyDict(c_dim=0, img_resolution=size, img_channels=3))
    kwargs["conv_clamp"] = value
    if not on_layers:
        return
    layers = [(g_tree, n, value) for n in generator_clamp_layers(size)]
    layers += [(d_tree, n, value) for n in discriminator_clamp_layers(size)]
    layers += [(d_tree, f"b{r}.skip", None) for r in [2 ** i for i in range(size.bit_length() - 1, 2, -1)]]
    for root, name, v in layers:
        node = root
        for part in name.split("."):
            node = node.state["_modules"][part]
        node.state["conv_clamp"] = v


def _write_nvidia_pickle(path, Persistent, g: StyleGAN2Generator, d: StyleGAN2Discriminator, mbstd=(4, 1),
                         conv_clamp=_NO_RECORD, clamp_on_layers=True, extra=None, dumps=None):
    """An NVIDIA snapshot of ``g`` and ``d``; ``conv_clamp`` recorded as NVIDIA does unless _NO_RECORD, ``extra``
    entries added to the snapshot dict, ``dumps(data) -> bytes`` the pickler (protocol 4 by default)."""
    gsd = dict(g.state_dict())
    gsd["latent_avg"] = torch.randn(g.config.style_dim)
    g_nv = rosinality_to_nvidia(gsd, generator_key_map(g.config.size, g.config.n_mlp))
    for r in [2 ** i for i in range(3, g.config.size.bit_length())]:
        g_nv[f"synthesis.b{r}.conv0.resample_filter"] = torch.tensor([1.0, 3, 3, 1]).outer(torch.tensor([1.0, 3, 3, 1])) / 64
    data = {"G": _tree(Persistent, g_nv, "Generator"), "D": _discriminator_tree(Persistent, d, mbstd),
            "G_ema": _tree(Persistent, g_nv, "Generator"), "augment_pipe": None,
            "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": g.config.size}}
    if conv_clamp is not _NO_RECORD:
        for name in ("G", "G_ema"):
            _record_conv_clamp(data[name], data["D"], g.config.size, conv_clamp, clamp_on_layers)
    data.update(extra or {})
    path.write_bytes(dumps(data) if dumps is not None else pickle.dumps(data, protocol=4))
    return gsd["latent_avg"]


@pytest.mark.parametrize("mbstd", [(4, 1), None], ids=["with-mbstd-records", "bare-tensors"])
def test_nvidia_pickle_converts_without_running_its_code(fake_persistence, tiny_generator, tiny_discriminator,
                                                          tmp_path, mbstd):
    Persistent, marker = fake_persistence
    latent_avg = _write_nvidia_pickle(tmp_path / "network-snapshot.pkl", Persistent, tiny_generator, tiny_discriminator,
                                      mbstd)
    SOURCE_RAN.clear()
    data = load_nvidia_pickle(tmp_path / "network-snapshot.pkl")
    assert isinstance(data["G_ema"], PersistedModule) and data["G_ema"].class_name == "Generator"
    assert not marker.exists() and not SOURCE_RAN  # the module source never ran

    out = convert_nvidia(tmp_path / "network-snapshot.pkl", tmp_path / "converted", discriminator=True)
    g = StyleGAN2Generator.from_pretrained(out).eval()
    d = StyleGAN2Discriminator.from_pretrained(out, subfolder="discriminator").eval()
    assert (d.config.mbstd_group_size, d.config.mbstd_num_channels) == (4, 1)  # stated, or NVIDIA's defaults
    assert g.config.has_latent_avg and torch.equal(g.latent_avg, latent_avg)
    z = torch.randn(2, g.config.style_dim)
    with torch.no_grad():
        a = tiny_generator([z], randomize_noise=False).images
        b = g([z], randomize_noise=False).images
        assert torch.equal(a, b)  # every weight, noise map and blur kernel landed where it belongs
        assert torch.equal(tiny_discriminator(a).logits, d(a).logits)
    assert not marker.exists()


def test_cli_convert_nvidia(fake_persistence, tiny_generator, tiny_discriminator, tmp_path, capsys):
    Persistent, _ = fake_persistence
    _write_nvidia_pickle(tmp_path / "n.pkl", Persistent, tiny_generator, tiny_discriminator)
    assert cli_main(["convert", "nvidia", str(tmp_path / "n.pkl"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.safetensors").exists()


class _Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_hostile_pickles_are_refused_before_anything_runs(tmp_path, fake_persistence):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G_ema": _Hostile()}))
    with pytest.raises(CheckpointError, match=r"asks for (posix|os)\.system.*nothing from it was executed"):
        load_nvidia_pickle(tmp_path / "evil.pkl")

    class EvalPayload:
        def __reduce__(self):
            return (eval, ("__import__('os').getcwd()",))

    (tmp_path / "eval.pkl").write_bytes(pickle.dumps([EvalPayload()]))
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load_nvidia_pickle(tmp_path / "eval.pkl")


def test_foreign_files_get_clear_errors(tmp_path, tiny_generator):
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="not a readable network pickle"):
        load_nvidia_pickle(tmp_path / "junk.pkl")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="holds no NVIDIA generator"):
        load_nvidia_pickle(tmp_path / "dict.pkl")
    torch.save({"g_ema": tiny_generator.state_dict()}, tmp_path / "rosinality.pt")
    with pytest.raises(CheckpointError, match="convert rosinality"):
        load_nvidia_pickle(tmp_path / "rosinality.pt")
    with pytest.raises(FileNotFoundError):
        load_nvidia_pickle(tmp_path / "missing.pkl")


def _nvidia_minibatch_std(x, group_size, num_channels):
    """NVIDIA's MinibatchStdLayer.forward (stylegan2-ada-pytorch training/networks.py), line for line."""
    N, C, H, W = x.shape
    G = min(group_size, N) if group_size is not None else N
    F = num_channels
    c = C // F
    y = x.reshape(G, -1, F, c, H, W)    # [GnFcHW] Split minibatch N into n groups of size G, channels C into F groups.
    y = y - y.mean(dim=0)               # [GnFcHW] Subtract mean over group.
    y = y.square().mean(dim=0)          # [nFcHW]  Calc variance over group.
    y = (y + 1e-8).sqrt()               # [nFcHW]  Calc stddev over group.
    y = y.mean(dim=[2, 3, 4])           # [nF]     Take average over channels and pixels.
    y = y.reshape(-1, F, 1, 1)          # [nF11]   Add missing dimensions.
    y = y.repeat(G, 1, H, W)            # [NFHW]   Replicate over group and pixels.
    return torch.cat([x, y], dim=1)     # [NCHW]   Append to input as new channels.


def _nvidia_logits(d: StyleGAN2Discriminator, images, group_size, num_channels):
    """Our residual blocks, NVIDIA's epilogue: the logits the pickle's own code gives for ``images``."""
    x = d.convs(images)
    x = _nvidia_minibatch_std(x, group_size, num_channels) if num_channels else x
    return d.final_linear(d.final_conv(x).flatten(1))


def test_nvidia_mbstd_group_size_is_read_and_honoured(fake_persistence, tiny_generator, tiny_discriminator, tmp_path):
    """paper256 / paper512 pickles train D with groups of 8: converted, D gives the logits NVIDIA's layer gives."""
    Persistent, _ = fake_persistence
    _write_nvidia_pickle(tmp_path / "paper256.pkl", Persistent, tiny_generator, tiny_discriminator, mbstd=(8, 1))
    out = convert_nvidia(tmp_path / "paper256.pkl", tmp_path / "converted", discriminator=True)
    saved = json.loads((out / "discriminator" / "config.json").read_text())
    assert saved["mbstd_group_size"] == 8 and saved.get("mbstd_num_channels", 1) == 1
    d = StyleGAN2Discriminator.from_pretrained(out, subfolder="discriminator").eval()
    assert (d.config.mbstd_group_size, d.config.mbstd_num_channels) == (8, 1)

    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = d.convs(images)
        ref8, ref4 = (_nvidia_minibatch_std(x, g, 1)[:, -1:] for g in (8, 4))
        assert torch.allclose(d.minibatch_stddev(x), ref8, rtol=1e-5, atol=1e-7)
        assert (ref8 - ref4).abs().max() > 1e-2 * ref8.abs().max()  # groups of 4 would be another feature
        logits = d(images).logits
        assert torch.allclose(logits, _nvidia_logits(d, images, 8, 1), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(logits, _nvidia_logits(d, images, 4, 1), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(logits, tiny_discriminator(images).logits, rtol=1e-4, atol=1e-5)
        # a batch of 4 is one group for both; 6 is one group of 6 (min(8, B), as NVIDIA's); 12, which 8 does not
        # divide (NVIDIA's reshape fails), falls back to groups of 1
        assert torch.equal(d(images[:4]).logits, tiny_discriminator(images[:4]).logits)
        assert torch.allclose(d(images[:6]).logits, _nvidia_logits(d, images[:6], 8, 1), rtol=1e-5, atol=1e-6)
        twelve = torch.cat([images, images[:4]])
        assert torch.allclose(d(twelve).logits, _nvidia_logits(d, twelve, 1, 1), rtol=1e-5, atol=1e-6)


def test_nvidia_mbstd_whole_batch_and_several_channels(fake_persistence, tiny_generator, tmp_path):
    """group size None (the whole minibatch) and 2 stddev channels, as NVIDIA's layer allows; 0 turns it off."""
    Persistent, _ = fake_persistence
    for group, channels in [(None, 2), (4, 0)]:
        torch.manual_seed(3)
        disc = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(size=32, channels=TINY_CHANNELS, mbstd_group_size=group,
                                                                   mbstd_num_channels=channels)).eval()
        _write_nvidia_pickle(tmp_path / "d.pkl", Persistent, tiny_generator, disc, mbstd=(group, channels))
        out = convert_nvidia(tmp_path / "d.pkl", tmp_path / f"out-{channels}", discriminator=True)
        d = StyleGAN2Discriminator.from_pretrained(out, subfolder="discriminator").eval()
        assert (d.config.mbstd_group_size, d.config.mbstd_num_channels) == (group, channels)
        images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert torch.allclose(d(images).logits, _nvidia_logits(d, images, group, channels), rtol=1e-5, atol=1e-6)


def test_nvidia_mbstd_records_that_disagree_with_the_weights_are_refused(fake_persistence, tiny_generator,
                                                                         tiny_discriminator, tmp_path):
    Persistent, _ = fake_persistence
    _write_nvidia_pickle(tmp_path / "bad.pkl", Persistent, tiny_generator, tiny_discriminator, mbstd=(4, 2))
    with pytest.raises(CheckpointError, match=r"2 channel\(s\) but b4\.conv\.weight .* takes 1"):
        convert_nvidia(tmp_path / "bad.pkl", tmp_path / "out", discriminator=True)
    _write_nvidia_pickle(tmp_path / "zero.pkl", Persistent, tiny_generator, tiny_discriminator, mbstd=(0, 1))
    with pytest.raises(CheckpointError, match="mbstd_group_size is 0, not a positive integer"):
        convert_nvidia(tmp_path / "zero.pkl", tmp_path / "out", discriminator=True)


def test_discriminator_configs_without_mbstd_fields_load_with_the_defaults(tmp_path):
    """Folders written before the fields existed (the bundled toyfaces-64 D among them) ran groups of 4, 1 channel."""
    bundled = Path(__file__).resolve().parents[1] / "gan_partseg" / "artifacts" / "toyfaces-64" / "discriminator"
    assert "mbstd_group_size" not in json.loads((bundled / "config.json").read_text())
    d = StyleGAN2Discriminator.from_pretrained(bundled)
    assert (d.config.mbstd_group_size, d.config.mbstd_num_channels) == (4, 1)
    assert d.stddev_group == 4 and d.final_conv[0].weight.shape[1] == d.config.channel(4) + 1
    with pytest.raises(ValueError, match="mbstd_group_size must be a positive integer or None"):
        StyleGAN2DiscriminatorConfig(size=32, channels=TINY_CHANNELS, mbstd_group_size=0)
    with pytest.raises(ValueError, match="does not divide"):
        StyleGAN2DiscriminatorConfig(size=32, channels=TINY_CHANNELS, mbstd_num_channels=3)


def _stylegan3_generator(Persistent, with_input=True):
    """The smallest G_ema of NVlabs/stylegan3's networks_stylegan3 layout: mapping, then a synthesis network of a
    Fourier-feature SynthesisInput and one alias-free SynthesisLayer (with its is_torgb / is_critically_sampled /
    use_fp16 flags and NumPy sizes, as the real module's __dict__ holds them)."""
    def fc(i, o):
        return Persistent("FullyConnectedLayer", {"weight": torch.zeros(o, i), "bias": torch.zeros(o)},
                          attrs={"in_features": i, "out_features": o, "activation": "linear"})

    size = np.broadcast_to(np.asarray(36), [2])
    synthesis = {"L0_36_4": Persistent(
        "SynthesisLayer", {"weight": torch.zeros(4, 4, 3, 3), "bias": torch.zeros(4)},
        {"magnitude_ema": torch.ones([]), "up_filter": torch.ones(12), "down_filter": torch.ones(12)},
        {"affine": fc(4, 4)},
        attrs={"w_dim": 4, "is_torgb": False, "is_critically_sampled": False, "use_fp16": False, "in_channels": 4,
               "out_channels": 4, "in_size": size, "out_size": size, "_init_args": (), "_init_kwargs": {}})}
    if with_input:
        synthesis = {"input": Persistent(
            "SynthesisInput", {"weight": torch.zeros(4, 4)},
            {"transform": torch.eye(3), "freqs": torch.zeros(4, 2), "phases": torch.zeros(4)}, {"affine": fc(4, 4)},
            attrs={"w_dim": 4, "channels": 4, "size": size, "sampling_rate": 16, "bandwidth": 2}), **synthesis}
    return Persistent("Generator", modules={
        "mapping": Persistent("MappingNetwork", buffers={"w_avg": torch.zeros(4)}, modules={"fc0": fc(4, 4)},
                              attrs={"z_dim": 4, "w_dim": 4, "num_ws": 2, "num_layers": 1}),
        "synthesis": Persistent("SynthesisNetwork", modules=synthesis,
                                attrs={"layer_names": list(synthesis)[1:] if with_input else list(synthesis)})},
        attrs={"z_dim": 4, "c_dim": 0, "w_dim": 4, "img_resolution": 16, "img_channels": 3, "_init_args": (),
               "_init_kwargs": _EasyDict(z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3)})


@pytest.mark.parametrize("with_input", [True, False], ids=["SynthesisInput", "SynthesisLayer-flags"])
def test_stylegan3_pickles_are_refused_by_name(fake_persistence, tmp_path, capsys, with_input):
    Persistent, marker = fake_persistence
    g = _stylegan3_generator(Persistent, with_input)
    (tmp_path / "sg3.pkl").write_bytes(pickle.dumps({"G": g, "G_ema": g, "D": None, "augment_pipe": None,
                                                     "training_set_kwargs": {"resolution": 16}}, protocol=4))
    evidence = "synthesis.input is a SynthesisInput" if with_input else "synthesis.L0_36_4 is an alias-free SynthesisLayer"
    with pytest.raises(CheckpointError) as err:
        convert_nvidia(tmp_path / "sg3.pkl", tmp_path / "out")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'sg3.pkl'} is a StyleGAN3 checkpoint (its {evidence}")
    assert "reads StyleGAN2 checkpoints only (stylegan2-ada-pytorch network pickles, rosinality .pt files)" in message
    assert "Use a StyleGAN2 network" in message and "not a StyleGAN2 generator" not in message
    assert "\n" not in message and not (tmp_path / "out").exists() and not marker.exists()

    capsys.readouterr()
    assert cli_main(["convert", "nvidia", str(tmp_path / "sg3.pkl"), str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("gan-partseg convert: error: ") and "is a StyleGAN3 checkpoint" in captured.err
    assert not (tmp_path / "out").exists()


def test_stylegan3_by_tensor_names_or_module_path(fake_persistence, tmp_path, monkeypatch):
    """No class names to go by (bare tensors), or a plain pickle of networks_stylegan3 classes: still named."""
    Persistent, _ = fake_persistence
    sg3 = {"mapping.fc0.weight": torch.zeros(4, 4), "mapping.w_avg": torch.zeros(4),
           "synthesis.input.weight": torch.zeros(4, 4), "synthesis.L0_36_512.weight": torch.zeros(4, 4, 3, 3)}
    (tmp_path / "sg3.pkl").write_bytes(pickle.dumps({"G_ema": _tree(Persistent, sg3, "Generator")}))
    with pytest.raises(CheckpointError, match=r"sg3\.pkl is a StyleGAN3 checkpoint \(it has synthesis\.L0_36_512\.weight\)"):
        convert_nvidia(tmp_path / "sg3.pkl", tmp_path / "out")
    assert not (tmp_path / "out").exists()

    from gan_partseg.convert.nvidia import nvidia_generator_to_rosinality

    with pytest.raises(CheckpointError, match=r"StyleGAN3 checkpoint \(it has synthesis\.input\.weight\)"):
        nvidia_generator_to_rosinality(sg3)

    module = types.ModuleType("training.networks_stylegan3")

    class Generator:
        pass

    Generator.__module__, Generator.__qualname__ = "training.networks_stylegan3", "Generator"
    module.Generator = Generator
    monkeypatch.setitem(sys.modules, "training", types.ModuleType("training"))
    monkeypatch.setitem(sys.modules, "training.networks_stylegan3", module)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"G_ema": Generator()}))
    with pytest.raises(CheckpointError, match=r"StyleGAN3 checkpoint \(it asks for training\.networks_stylegan3\."
                                              r"Generator; nothing from it was executed\)"):
        load_nvidia_pickle(tmp_path / "plain.pkl")


def test_restricted_unpickler_is_off_every_default_path(tmp_path):
    """The package, its CLI, demo, hub entry points and loaders never import the pickle reader; only
    `gan-partseg convert nvidia` does. A fresh interpreter, so nothing this test session imported counts."""
    import subprocess

    code = ("import sys, gan_partseg, gan_partseg.cli, gan_partseg.demo, gan_partseg.convert, hubconf\n"
            "from gan_partseg import StyleGAN2Generator\n"
            "StyleGAN2Generator.from_pretrained('toyfaces-64')\n"
            "print('gan_partseg.convert.nvidia' in sys.modules)\n")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_reader_reads_plain_data_of_every_binary_protocol(protocol):
    import collections
    import io

    from gan_partseg.convert.unpickle import restricted_load

    shared = [1, 2]
    value = {"ints": [0, 1, 255, 65535, -1, 2**31, -(2**70)], "floats": (0.5, -1e300), "text": "é" * 300,
             "bytes": b"x" * 70000, "flags": (True, False, None), "sets": ({1, 2}, frozenset({3})),
             "nested": {"a": shared, "b": shared}, "od": collections.OrderedDict(k=1), "t": (), "t3": (1, 2, 3)}
    import codecs

    allow = {("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "set"): set,
             ("builtins", "frozenset"): frozenset, ("_codecs", "encode"): codecs.encode}  # protocol 2 bytes
    out = restricted_load(io.BytesIO(pickle.dumps(value, protocol=protocol)), lambda m, n: allow.get((m, n)))
    assert out == value and out["nested"]["a"] is out["nested"]["b"]


def test_restricted_reader_refuses_what_it_does_not_allow():
    import io

    from gan_partseg.convert.unpickle import UnpicklingRefused, restricted_load

    class Payload:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    with pytest.raises(UnpicklingRefused, match="builtins.eval is not allowed"):
        restricted_load(io.BytesIO(pickle.dumps([Payload()])), lambda m, n: None)

    class WithPid(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    buf = io.BytesIO()
    WithPid(buf, protocol=4).dump(["secret"])
    with pytest.raises(UnpicklingRefused, match="persistent ids"):
        restricted_load(io.BytesIO(buf.getvalue()), lambda m, n: None)
    with pytest.raises(UnpicklingRefused, match="only binary protocols"):
        restricted_load(io.BytesIO(pickle.dumps([1], protocol=0)), lambda m, n: None)
    with pytest.raises(UnpicklingRefused, match="truncated"):
        restricted_load(io.BytesIO(pickle.dumps(b"y" * 100, protocol=4)[:-20]), lambda m, n: None)


# --- conv_clamp (issue 23 item 3) ---


def _nvidia_clamped_images(g: StyleGAN2Generator, z, clamp: float):
    """What NVIDIA's layers give: every SynthesisLayer output (after bias, lrelu, gain) and every ToRGBLayer output
    (after its bias, before the skip image is added) clamped to +-clamp. Run on the *unclamped* ``g`` with hooks, so
    the placement is checked independently of the config field."""
    handles = [m.register_forward_hook(lambda _m, _i, out: out.clamp(-clamp, clamp))
               for m in [g.conv1, *g.convs]]
    for rgb in [g.to_rgb1, *g.to_rgbs]:  # ToRGB = conv + bias: clamp(conv + bias) - bias, then ToRGB adds the bias
        handles.append(rgb.conv.register_forward_hook(
            lambda _m, _i, out, b=rgb.bias: (out + b).clamp(-clamp, clamp) - b))
    try:
        with torch.no_grad():
            return g([z], randomize_noise=False).images
    finally:
        for h in handles:
            h.remove()


def test_conv_clamp_clamps_where_nvidia_does_and_none_changes_nothing(tiny_generator, tiny_discriminator, tmp_path):
    z = torch.randn(2, tiny_generator.config.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        free = tiny_generator([z], randomize_noise=False, return_features=True)
    clamp = 0.5 * min(float(f.abs().max()) for f in free.features.values())  # bites in every layer
    clamped = StyleGAN2Generator(StyleGAN2Config(**{**tiny_generator.config.to_diff_dict(), "conv_clamp": clamp}))
    clamped.load_state_dict(tiny_generator.state_dict())
    clamped.eval()
    with torch.no_grad():
        out = clamped([z], randomize_noise=False, return_features=True)
    assert all(float(f.abs().max()) <= clamp * (1 + 1e-6) for f in out.features.values())
    ref = _nvidia_clamped_images(tiny_generator, z, clamp)
    assert torch.allclose(out.images, ref, atol=1e-6) and not torch.allclose(out.images, free.images, atol=1e-3)
    loose = StyleGAN2Generator(StyleGAN2Config(**{**tiny_generator.config.to_diff_dict(), "conv_clamp": 1e6}))
    loose.load_state_dict(tiny_generator.state_dict())
    with torch.no_grad():
        assert torch.equal(loose.eval()([z], randomize_noise=False).images, free.images)  # a clamp that never bites
    clamped.save_pretrained(tmp_path / "g")
    assert StyleGAN2Generator.from_pretrained(tmp_path / "g").config.conv_clamp == clamp
    # D: fromrgb, both convs of each block, the epilogue conv
    d = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(size=32, channels=TINY_CHANNELS, conv_clamp=0.25))
    d.load_state_dict(tiny_discriminator.state_dict())
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    clamped_layers = [tiny_discriminator.convs[0], tiny_discriminator.final_conv]
    clamped_layers += [c for block in tiny_discriminator.convs[1:] for c in (block.conv1, block.conv2)]  # not .skip
    handles = [m.register_forward_hook(lambda _m, _i, out: out.clamp(-0.25, 0.25)) for m in clamped_layers]
    with torch.no_grad():
        try:
            ref = tiny_discriminator(images).logits  # NVIDIA's placement, on the unclamped D with hooks
        finally:
            for h in handles:
                h.remove()
        logits = d.eval()(images).logits
        assert torch.allclose(logits, ref, atol=1e-6)
        assert not torch.allclose(logits, tiny_discriminator(images).logits, atol=1e-4)
        assert float(d.convs[0](images).abs().max()) <= 0.25
    for bad in (-1, float("inf"), "256", True):
        with pytest.raises(ValueError, match="conv_clamp must be None"):
            StyleGAN2Config(size=32, conv_clamp=bad)


@pytest.mark.parametrize("value,on_layers", [(256, True), (0.5, True), (0.5, False), (None, True)],
                         ids=["256-on-layers", "bites-on-layers", "init-kwargs-only", "fp32-None"])
def test_nvidia_conv_clamp_is_read_and_honoured(fake_persistence, tiny_generator, tiny_discriminator, tmp_path,
                                                value, on_layers):
    Persistent, _ = fake_persistence
    _write_nvidia_pickle(tmp_path / "n.pkl", Persistent, tiny_generator, tiny_discriminator, conv_clamp=value,
                         clamp_on_layers=on_layers)
    out = convert_nvidia(tmp_path / "n.pkl", tmp_path / "out", discriminator=True)
    g = StyleGAN2Generator.from_pretrained(out).eval()
    d = StyleGAN2Discriminator.from_pretrained(out, subfolder="discriminator").eval()
    want = None if value is None else float(value)
    assert g.config.conv_clamp == want and d.config.conv_clamp == want
    z = torch.randn(2, g.config.style_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        images = g([z], randomize_noise=False).images
    ref = _nvidia_clamped_images(tiny_generator, z, value) if value is not None else None
    if ref is None:
        with torch.no_grad():
            ref = tiny_generator([z], randomize_noise=False).images
    assert torch.allclose(images, ref, atol=1e-6)
    if value == 0.5:  # it bites: the unclamped network would draw something else
        with torch.no_grad():
            assert not torch.allclose(images, tiny_generator([z], randomize_noise=False).images, atol=1e-3)


def test_nvidia_conv_clamp_bare_tensors_and_disagreeing_layers(fake_persistence, tiny_generator, tiny_discriminator,
                                                               tmp_path):
    Persistent, _ = fake_persistence
    _write_nvidia_pickle(tmp_path / "bare.pkl", Persistent, tiny_generator, tiny_discriminator)  # nothing recorded
    out = convert_nvidia(tmp_path / "bare.pkl", tmp_path / "bare", discriminator=True)
    assert StyleGAN2Generator.from_pretrained(out).config.conv_clamp is None

    def one_layer_differs(data):
        layer = data["G_ema"]
        for part in generator_clamp_layers(32)[3].split("."):
            layer = layer.state["_modules"][part]
        layer.state["conv_clamp"] = 128
        return pickle.dumps(data, protocol=4)

    _write_nvidia_pickle(tmp_path / "mixed.pkl", Persistent, tiny_generator, tiny_discriminator, conv_clamp=256,
                         dumps=one_layer_differs)
    with pytest.raises(CheckpointError, match="layers clamp differently"):
        convert_nvidia(tmp_path / "mixed.pkl", tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()
    assert discriminator_clamp_layers(32)[0] == "b32.fromrgb" and discriminator_clamp_layers(32)[-1] == "b4.conv"


# --- released-era pickles: torch 1.7-1.9, numpy 1.x (issue 23 item 5) ---


def _numpy1_dumps(monkeypatch, protocol: int):
    """A pickler that writes NumPy values as numpy 1.x did: ``numpy.core.multiarray._reconstruct`` / ``scalar``
    globals (numpy 2 writes ``numpy._core``), ``numpy dtype`` with its BUILD state. Protocol 2 (what torch 1.x-era
    code got with ``pickle.dump(..., protocol=2)``) also writes every ``bytes`` as ``_codecs.encode(text, "latin1")``."""
    import io

    fake = types.ModuleType("numpy.core.multiarray")  # what the file names; the names resolve to stand-ins here

    def _reconstruct(*args):
        raise AssertionError("never called while writing")

    def scalar(*args):
        raise AssertionError("never called while writing")

    for fn in (_reconstruct, scalar):
        fn.__module__, fn.__qualname__ = "numpy.core.multiarray", fn.__name__
        setattr(fake, fn.__name__, fn)
    monkeypatch.setitem(sys.modules, "numpy.core.multiarray", fake)

    class Numpy1Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, np.ndarray):
                _, args, state = obj.__reduce__()
                return fake._reconstruct, args, state
            if isinstance(obj, np.generic):
                _, args = obj.__reduce__()
                return fake.scalar, args
            return NotImplemented

    def dumps(data):
        buf = io.BytesIO()
        Numpy1Pickler(buf, protocol=protocol).dump(data)
        return buf.getvalue()

    return dumps


@pytest.mark.parametrize("protocol", [2, 4])
def test_released_era_pickles_with_numpy_1_values_are_read(fake_persistence, tiny_generator, tiny_discriminator,
                                                           tmp_path, monkeypatch, protocol):
    """NVIDIA's published .pkl files hold numpy scalars in every layer's state (``weight_gain = 1 / np.sqrt(...)``),
    numpy values in ``training_set_kwargs`` and a persistent ``augment_pipe`` with numpy arrays."""
    Persistent, marker = fake_persistence

    def released(data):
        for name in ("G", "G_ema"):
            fc = data[name].state["_modules"]["mapping"].state["_modules"]["fc0"]
            fc.state.update(weight_gain=np.float64(1 / np.sqrt(32)), bias_gain=np.float32(0.01), activation="lrelu")
        data["training_set_kwargs"] = _EasyDict(class_name="training.dataset.ImageFolderDataset", path="ffhq.zip",
                                                resolution=np.int64(32), max_size=np.int32(70000), xflip=np.bool_(True),
                                                use_labels=False, raw_shape=(70000, 3, 32, 32))
        data["augment_pipe"] = Persistent("AugmentPipe", buffers={"p": torch.zeros([])},
                                          attrs={"xflip": np.float64(1.0), "imgfilter_bands": [1, 1, 1, 1],
                                                 "_Hz_fbank": np.arange(12, dtype=np.float32).reshape(4, 3),
                                                 "dtype": np.dtype("float32"), "label": b"\x00\xffbytes"})
        data["progress"] = {"cur_nimg": np.int64(25000), "tick": 7}
        return _numpy1_dumps(monkeypatch, protocol)(data)

    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    _write_nvidia_pickle(path, Persistent, tiny_generator, tiny_discriminator, conv_clamp=256, dumps=released)
    raw = path.read_bytes()
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw  # numpy 1.x's spelling, as released
    assert (b"_codecs" in raw) == (protocol == 2)
    monkeypatch.delitem(sys.modules, "numpy.core.multiarray")  # the reader resolves it against the installed numpy
    data = load_nvidia_pickle(path)
    kw = data["training_set_kwargs"]
    assert kw["resolution"] == 32 and isinstance(kw["resolution"], np.int64) and kw["xflip"] is np.True_
    pipe = data["augment_pipe"].state
    assert pipe["_Hz_fbank"].dtype == np.float32 and np.array_equal(pipe["_Hz_fbank"], np.arange(12).reshape(4, 3))
    assert pipe["dtype"] == np.dtype("float32") and pipe["label"] == b"\x00\xffbytes"
    gain = data["G_ema"].state["_modules"]["mapping"].state["_modules"]["fc0"].state["weight_gain"]
    assert isinstance(gain, np.float64) and gain == 1 / np.sqrt(32)
    out = convert_nvidia(path, tmp_path / "out", discriminator=True)
    g = StyleGAN2Generator.from_pretrained(out).eval()
    assert g.config.conv_clamp == 256.0
    z = torch.randn(2, g.config.style_dim)
    with torch.no_grad():
        assert torch.equal(g([z], randomize_noise=False).images, tiny_generator([z], randomize_noise=False).images)
    assert not marker.exists()


def test_codecs_encode_is_only_latin1_text(tmp_path):
    """Protocol 2's ``_codecs.encode`` is allowed for latin-1 text alone: no codec is looked up by the file's name."""
    (tmp_path / "rot.pkl").write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00rot_13\x86R.")
    with pytest.raises(CheckpointError, match=r"refused _codecs.encode\(str, 'rot_13'\)"):
        load_nvidia_pickle(tmp_path / "rot.pkl")


def test_numpy_values_are_plain_numbers_only_and_a_forged_dtype_is_refused(tmp_path):
    """A dtype's BUILD state can declare object fields with flags that say it holds none; numpy would then read
    object pointers from the file's bytes. Object arrays, structured dtypes and forged states are refused."""
    import io

    from gan_partseg.convert.nvidia import _check_numpy_build, _find_class
    from gan_partseg.convert.unpickle import restricted_load

    def load(raw: bytes):
        return restricted_load(io.BytesIO(raw), _find_class, check_build=_check_numpy_build)

    ok = load(pickle.dumps({"a": np.arange(6, dtype=np.int16).reshape(2, 3), "s": np.float32(2.5),
                            "d": np.dtype(">u4"), "b": np.bool_(False)}, protocol=2))
    assert ok["a"].dtype == np.int16 and ok["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and ok["s"] == np.float32(2.5)
    assert ok["d"] == np.dtype(">u4") and ok["b"] is np.False_
    assert np.dtype("f8").names is None  # numpy's own dtype objects were never touched by a BUILD
    refused = {"object array": np.array([1, "x"], dtype=object), "structured": np.zeros(2, dtype=[("a", "f4")]),
               "text": np.str_("x")}
    for what, value in refused.items():
        with pytest.raises(CheckpointError, match="refused a NumPy"):
            load(pickle.dumps(value, protocol=2))
    # dtype('f8') rebuilt with a state naming fields (the forged file's shape): refused, whatever the field's dtype
    def forged(field_spec: bytes) -> bytes:
        return (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R"
                b"(K\x03X\x01\x00\x00\x00|NX\x01\x00\x00\x00a\x85}X\x01\x00\x00\x00a"
                b"cnumpy\ndtype\nX\x02\x00\x00\x00" + field_spec + b"\x89\x88\x87RK\x00\x86sK\x08K\x01K\x00tb.")

    with pytest.raises(CheckpointError, match="refused a NumPy dtype 'O8'"):
        load(forged(b"O8"))
    with pytest.raises(CheckpointError, match=r"refused a NumPy dtype state \(fields"):
        load(forged(b"f8"))
    (tmp_path / "forged.pkl").write_bytes(forged(b"f8"))
    with pytest.raises(CheckpointError, match="refused a NumPy dtype state"):
        load_nvidia_pickle(tmp_path / "forged.pkl")
