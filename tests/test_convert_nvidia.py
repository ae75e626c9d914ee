"""NVIDIA stylegan2-ada-pytorch pickles: built here with the real structure, read without running code."""

import collections
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from gan_partseg import StyleGAN2Discriminator, StyleGAN2Generator
from gan_partseg.cli import main as cli_main
from gan_partseg.convert.nvidia import (
    PersistedModule,
    convert_nvidia,
    discriminator_key_map,
    generator_key_map,
    load_nvidia_pickle,
    rosinality_to_nvidia,
)
from gan_partseg.convert.rosinality import CheckpointError

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
        def __init__(self, class_name, params=None, buffers=None, modules=None):
            self.class_name = class_name
            self.state = {"training": False,
                          "_parameters": collections.OrderedDict((k, torch.nn.Parameter(v)) for k, v in (params or {}).items()),
                          "_buffers": collections.OrderedDict(buffers or {}),
                          "_non_persistent_buffers_set": set(),
                          "_modules": collections.OrderedDict(modules or {})}

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


def _write_nvidia_pickle(path, Persistent, g: StyleGAN2Generator, d: StyleGAN2Discriminator):
    gsd = dict(g.state_dict())
    gsd["latent_avg"] = torch.randn(g.config.style_dim)
    g_nv = rosinality_to_nvidia(gsd, generator_key_map(g.config.size, g.config.n_mlp))
    for r in [2 ** i for i in range(3, g.config.size.bit_length())]:
        g_nv[f"synthesis.b{r}.conv0.resample_filter"] = torch.tensor([1.0, 3, 3, 1]).outer(torch.tensor([1.0, 3, 3, 1])) / 64
    d_nv = rosinality_to_nvidia(dict(d.state_dict()), discriminator_key_map(d.config.size))
    data = {"G": _tree(Persistent, g_nv, "Generator"), "D": _tree(Persistent, d_nv, "Discriminator"),
            "G_ema": _tree(Persistent, g_nv, "Generator"), "augment_pipe": None,
            "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": g.config.size}}
    path.write_bytes(pickle.dumps(data, protocol=4))
    return gsd["latent_avg"]


def test_nvidia_pickle_converts_without_running_its_code(fake_persistence, tiny_generator, tiny_discriminator,
                                                          tmp_path):
    Persistent, marker = fake_persistence
    latent_avg = _write_nvidia_pickle(tmp_path / "network-snapshot.pkl", Persistent, tiny_generator, tiny_discriminator)
    SOURCE_RAN.clear()
    data = load_nvidia_pickle(tmp_path / "network-snapshot.pkl")
    assert isinstance(data["G_ema"], PersistedModule) and data["G_ema"].class_name == "Generator"
    assert not marker.exists() and not SOURCE_RAN  # the module source never ran

    out = convert_nvidia(tmp_path / "network-snapshot.pkl", tmp_path / "converted", discriminator=True)
    g = StyleGAN2Generator.from_pretrained(out).eval()
    d = StyleGAN2Discriminator.from_pretrained(out, subfolder="discriminator").eval()
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


def test_other_architectures_are_named(fake_persistence, tmp_path):
    Persistent, _ = fake_persistence
    sg3 = {"mapping.fc0.weight": torch.zeros(4, 4), "mapping.w_avg": torch.zeros(4),
           "synthesis.input.weight": torch.zeros(4, 4), "synthesis.L0_36_512.weight": torch.zeros(4, 4, 3, 3)}
    (tmp_path / "sg3.pkl").write_bytes(pickle.dumps({"G_ema": _tree(Persistent, sg3, "Generator")}))
    with pytest.raises(CheckpointError, match="not a StyleGAN2 generator|StyleGAN3"):
        convert_nvidia(tmp_path / "sg3.pkl", tmp_path / "out")
    assert not (tmp_path / "out").exists()


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
