"""Nothing a user owns is lost: every command that writes a whole folder refuses, before any work, a path
holding what the package did not write (issue 24), and --overwrite replaces only a folder of the same kind."""

import json

import pytest
import torch

from gan_partseg.cli import main
from gan_partseg.files import OutputError, check_output, folder_kind
from gan_partseg.hub import save_pretrained_atomic


def _user_folder(path):
    path.mkdir(parents=True)
    (path / "KEEP_ME.txt").write_text("mine")
    (path / "notes.md").write_text("# my notes")
    return {p.name: p.read_text() for p in path.iterdir()}


def _untouched(path, before):
    assert {p.name: p.read_text() for p in path.iterdir()} == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]  # no .OUT.old / .tmp


def _generated_set(path):
    path.mkdir(parents=True)
    (path / "dataset.json").write_text(json.dumps({"complete": True, "n": 4}))
    (path / "shard-00000-of-00001.parquet").write_text("rows")
    return {p.name: p.read_text() for p in path.iterdir()}


@pytest.fixture
def ckpt(tiny_generator, tmp_path):
    torch.save({"g_ema": tiny_generator.state_dict()}, tmp_path / "g.pt")
    return tmp_path / "g.pt"


def _commands(ckpt, out):
    return {
        "convert": ["convert", "rosinality", str(ckpt), str(out)],
        "train-fewshot": ["train-fewshot", "--shots", str(ckpt.parent / "no-shots"), "--out", str(out)],
        "export-data": ["export-data", "--out", str(out), "--n", "2", "--size", "32"],
        "export-data png": ["export-data", "--out", str(out), "--n", "2", "--size", "32", "--format", "png"],
        "import-data": ["import-data", "celebamask-hq", str(ckpt.parent / "no-release"), str(out)],
    }


@pytest.mark.parametrize("command", ["convert", "train-fewshot", "export-data", "export-data png", "import-data"])
def test_a_folder_of_the_users_own_files_is_refused_untouched(ckpt, tmp_path, capsys, command):
    out = tmp_path / "mine"
    before = _user_folder(out)
    assert main(_commands(ckpt, out)[command]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "KEEP_ME.txt" in err and "nothing was written" in err and "Traceback" not in err
    _untouched(out, before)
    assert main(_commands(ckpt, out)[command] + ["--overwrite"]) == 2  # --overwrite never replaces foreign files
    _untouched(out, before)


@pytest.mark.parametrize("command", ["convert", "train-fewshot", "export-data", "import-data"])
def test_an_existing_file_is_refused_and_never_renamed(ckpt, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.write_text("my file")
    assert main(_commands(ckpt, out)[command]) == 2
    err = capsys.readouterr().err
    assert f"{out} is a file" in err and "Errno" not in err
    assert out.read_text() == "my file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt", "out"]


def test_export_over_a_generated_data_set_is_refused(ckpt, tmp_path, capsys):
    out = tmp_path / "generated"
    before = _generated_set(out)
    assert main(_commands(ckpt, out)["export-data"] + ["--overwrite"]) == 2
    assert f"{out} holds a generated data set" in capsys.readouterr().err
    _untouched(out, before)


def test_overwrite_replaces_an_earlier_output_of_the_same_kind_only(ckpt, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(_commands(ckpt, out)["convert"]) == 0
    assert folder_kind(out) == "model folder"
    first = (out / "model.safetensors").stat().st_mtime_ns
    assert main(_commands(ckpt, out)["convert"]) == 2  # an earlier model folder: only with --overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(_commands(ckpt, out)["convert"] + ["--overwrite"]) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns >= first and folder_kind(out) == "model folder"
    assert main(_commands(ckpt, out)["export-data"] + ["--overwrite"]) == 2  # a model folder is not a data set
    assert "holds a model folder" in capsys.readouterr().err


def test_the_api_refuses_the_same_before_writing(tiny_generator, tmp_path):
    out = tmp_path / "mine"
    before = _user_folder(out)
    with pytest.raises(OutputError, match="KEEP_ME.txt"):
        save_pretrained_atomic(tiny_generator, out)
    _untouched(out, before)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output(empty, "model folder", overwrite=False) == empty  # an empty folder is fine
    save_pretrained_atomic(tiny_generator, empty)
    with pytest.raises(OutputError, match="pass --overwrite"):
        check_output(empty, "model folder", overwrite=False)
    with pytest.raises(ValueError, match="unknown output kind"):
        check_output(empty, "zip file")
