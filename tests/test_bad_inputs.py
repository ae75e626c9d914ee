"""Bad inputs get a plain answer before any work, and leave nothing behind (issue 24).

docs/bad-inputs.md lists every case of this file (and of test_outputs.py / test_kill_resume.py) with the
answer it gets; add a row there when a case is added here.
"""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gan_partseg import StyleGAN2Generator
from gan_partseg.cli import main
from gan_partseg.data.generated import load_generated_dataset, shard_path
from gan_partseg.errors import SEED_MAX, ArgumentError, DatasetError, ImageError, ModelFolderError, UserError
from gan_partseg.images import load_image
from gan_partseg.jobs.generated import make_dataset


def _fails_plainly(capsys, argv, *needles):
    """The command exits 2 with ``gan-partseg CMD: error: ...`` naming every needle, and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"gan-partseg {argv[0]}: error:" in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("argv, needles", [
    (["sample", "--n", "-3"], ["--n", ">= 1", "-3"]),
    (["sample", "--seed", str(2**70)], ["--seed", str(SEED_MAX)]),
    (["make-dataset", "--n", "0"], ["--n", ">= 1"]),
    (["make-dataset", "--shard-size", "0"], ["--shard-size", ">= 1"]),
    (["make-dataset", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["export-data", "--n", "-5"], ["--n", ">= 1"]),
    (["train-autoshot", "--epochs", "0"], ["--epochs", ">= 1"]),
    (["train-autoshot", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["train-fewshot", "--steps", "0"], ["--steps", ">= 1"]),
    (["train-fewshot", "--steps", "ten"], ["--steps", "expected an integer"]),
])
def test_counts_and_seeds_out_of_range_are_refused_by_the_parser(argv, needles, tmp_path, capsys):
    out = tmp_path / "out"
    argv = argv + (["--out", str(out)] if argv[0] != "make-dataset" else ["--segmenter", "x", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:  # argparse: exit 2 with the usage and the message
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(n in err for n in needles), err
    assert not out.exists()  # nothing written


def test_the_api_checks_the_same_ranges(tmp_path):
    with pytest.raises(ArgumentError, match="n must be >= 1, got 0"):
        make_dataset("toyfaces-64-fewshot-10c-1shot", tmp_path / "ds", n=0)
    with pytest.raises(ArgumentError, match="shard_size"):
        make_dataset("toyfaces-64-fewshot-10c-1shot", tmp_path / "ds", n=4, shard_size=0)
    assert not (tmp_path / "ds").exists()
    from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot

    with pytest.raises(ArgumentError, match="steps must be >= 1"):
        train_fewshot(TrainFewShotConfig(steps=0, out=str(tmp_path / "m")))
    assert not (tmp_path / "m").exists()
    assert issubclass(ArgumentError, UserError) and issubclass(ArgumentError, ValueError)


@pytest.fixture
def model_folder(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "gen")
    return tmp_path / "gen"


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_a_corrupt_weights_file_is_named(model_folder, capsys, damage):
    weights = model_folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFolderError, match="model.safetensors is corrupt or truncated"):
        StyleGAN2Generator.from_pretrained(model_folder)
    _fails_plainly(capsys, ["grid", "--generator", str(model_folder), "--out", str(model_folder / "g.png")],
                   "model.safetensors is corrupt or truncated", "download the model again")


def test_a_config_without_its_fields_is_named(model_folder, capsys):
    (model_folder / "config.json").write_text(json.dumps({"model_type": "stylegan2"}))
    with pytest.raises(ModelFolderError, match="lacks the fields .*channels.*size"):
        StyleGAN2Generator.from_pretrained(model_folder)
    _fails_plainly(capsys, ["grid", "--generator", str(model_folder), "--out", str(model_folder / "g.png")],
                   "config.json lacks the fields")


def _bomb_png(path, w=20000, h=20000):
    """A PNG whose header says w x h (8-bit gray) but whose data is a few bytes: opened, never decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = zlib.compress(b"\x00" * (w + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    bomb = _bomb_png(images / "bomb.png")
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageError, match="20000x20000 .400 megapixels.*limit of 67 megapixels"):
        load_image(bomb)
    _fails_plainly(capsys, ["invert", str(images), str(tmp_path / "out"), "--generator", "toyfaces-64"],
                   "bomb.png is 20000x20000", "not decoded")
    assert not (tmp_path / "out").exists()


def test_a_16_bit_png_is_scaled_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    image, notes = load_image(tmp_path / "ramp.png")
    assert image.shape == (64, 64, 3)
    assert abs(image.mean() - 127.5) < 1.5 and (image == 255).mean() < 0.01  # was: mean 251, 98% white
    assert np.all(np.diff(image[..., 0].reshape(-1).astype(int)) >= 0)  # still a ramp
    assert any("16-bit image scaled to 8 bits" in n for n in notes)


def test_a_corrupt_shard_of_a_complete_data_set_is_named_and_make_dataset_redoes_only_it(segmenter_dir, tmp_path,
                                                                                         capsys):
    out = make_dataset(segmenter_dir, tmp_path / "ds", n=8, shard_size=4, progress=False)
    good, bad = shard_path(out, 0, 2), shard_path(out, 1, 2)
    stamp, data = good.stat().st_mtime_ns, bad.read_bytes()
    bad.write_bytes(data[:100] + bytes(len(data) - 200) + data[-100:])  # footer intact, pages zeroed
    assert json.loads((out / "dataset.json").read_text())["complete"]
    with pytest.raises(DatasetError, match=f"{bad.name} is unreadable.*rerun the make-dataset command"):
        load_generated_dataset(out)
    _fails_plainly(capsys, ["train-autoshot", "--data", str(out), "--out", str(tmp_path / "run"), "--epochs", "1"],
                   bad.name, "rerun the make-dataset command")
    make_dataset(segmenter_dir, out, n=8, shard_size=4, progress=False)
    ds, _ = load_generated_dataset(out)
    assert sorted(ds["seed"]) == list(range(8)) and good.stat().st_mtime_ns == stamp


def test_every_family_is_a_user_error_and_keeps_its_builtin_base():
    from gan_partseg import errors

    families = [errors.ArgumentError, errors.ModelFolderError, errors.CheckpointError, errors.ImageError,
                errors.ShotsError, errors.DatasetError, errors.OutputError, errors.MissingFileError,
                errors.MissingExtraError]
    defined = {obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, Exception) and obj is not UserError}
    assert defined == set(families)  # a family added to errors.py is added here (and to docs/bad-inputs.md)
    for family in families:
        assert issubclass(family, UserError) and issubclass(family, Exception), family
        assert family.__doc__, family
    for family, builtin in ((errors.ArgumentError, ValueError), (errors.DatasetError, ValueError),
                            (errors.OutputError, FileExistsError), (errors.MissingFileError, FileNotFoundError),
                            (errors.MissingExtraError, ImportError)):
        assert issubclass(family, builtin), family  # `except ValueError` (etc.) written before the families works
    from gan_partseg.data.celebamask import CelebAMaskError
    from gan_partseg.data.pascal_part import PascalPartError
    from gan_partseg.lite0 import MissingExtraError

    assert issubclass(CelebAMaskError, errors.DatasetError) and issubclass(PascalPartError, errors.DatasetError)
    assert MissingExtraError is errors.MissingExtraError


@pytest.mark.parametrize("fault", [ValueError("a bug deep in torch"), RuntimeError("a bug"), KeyError("bug"),
                                   OSError("disk gone"), ImportError("cannot import name 'x' from 'torch'")])
def test_a_real_fault_keeps_its_traceback_and_a_user_error_is_one_line(fault, monkeypatch, tmp_path, capsys):
    import gan_partseg.cli as cli

    def broken(args):
        raise fault

    argv = ["export-data", "--out", str(tmp_path / "d"), "--n", "1"]
    monkeypatch.setattr(cli, "_cmd_export_data", broken)
    with pytest.raises(type(fault)) as info:  # not caught: python prints the traceback and exits 1
        main(argv)
    assert info.value is fault
    assert "error:" not in capsys.readouterr().err

    def refused(args):
        raise ArgumentError("--n must be >= 1, got 0")

    monkeypatch.setattr(cli, "_cmd_export_data", refused)
    _fails_plainly(capsys, argv, "--n must be >= 1")
    monkeypatch.setenv("GAN_PARTSEG_DEBUG", "1")  # and with the debug switch, a user error keeps its traceback too
    with pytest.raises(ArgumentError):
        main(argv)
    monkeypatch.delenv("GAN_PARTSEG_DEBUG")
    with pytest.raises(ArgumentError):
        main(["--debug", *argv])


def test_a_missing_optional_extra_names_it_and_other_import_errors_are_faults(monkeypatch, tmp_path, capsys):
    import gan_partseg.cli as cli

    def needs_scipy(args):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    argv = ["export-data", "--out", str(tmp_path / "d"), "--n", "1"]
    monkeypatch.setattr(cli, "_cmd_export_data", needs_scipy)
    _fails_plainly(capsys, argv, "needs the 'data' extra", "pip install 'gan_partseg[data]'")

    def needs_unknown(args):
        raise ModuleNotFoundError("No module named 'torch._C'", name="torch._C")

    monkeypatch.setattr(cli, "_cmd_export_data", needs_unknown)
    with pytest.raises(ModuleNotFoundError):
        main(argv)


def test_a_model_folder_without_weights_or_subfolder_is_named(model_folder, capsys):
    from gan_partseg import StyleGAN2Discriminator
    from gan_partseg.errors import MissingFileError

    with pytest.raises(MissingFileError, match="holds no discriminator/ model"):
        StyleGAN2Discriminator.from_pretrained(model_folder, subfolder="discriminator")
    (model_folder / "model.safetensors").unlink()
    _fails_plainly(capsys, ["grid", "--generator", str(model_folder), "--out", str(model_folder / "g.png")],
                   f"{model_folder} could not be loaded as a StyleGAN2 generator", "no file named model.safetensors")


def test_an_unreadable_shot_image_is_named(tmp_path, capsys):
    shots = tmp_path / "shots"
    assert main(["sample", "--n", "1", "--out", str(shots)]) == 0
    image = next((shots / "images").glob("*.png"))
    image.write_bytes(b"not a png")
    capsys.readouterr()
    _fails_plainly(capsys, ["train-fewshot", "--shots", str(shots), "--steps", "1"],
                   f"{image} is not a readable PNG", "remove the shot")
