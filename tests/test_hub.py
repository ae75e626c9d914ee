"""torch.hub entry points, Hub-ready model folders, model cards and push (up to the upload call)."""

from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from gan_partseg import AutoShotSegmenter, FewShotSegmenter, StyleGAN2Generator
from gan_partseg.cli import main as cli_main
from gan_partseg.hub import bundled_artifacts, check_model_repo, push_folder
from gan_partseg.models.autoshot import AutoShotSegmenterConfig
from gan_partseg.training.autoshot import save_autoshot
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_hubconf_lists_only_the_three_entry_points():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf_under_test", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # torch.hub.list's rule: public callables of hubconf.py
    entries = [f for f in dir(hubconf) if callable(getattr(hubconf, f)) and not f.startswith("_")]
    assert sorted(entries) == ["autoshot_segmenter", "fewshot_segmenter", "stylegan2_generator"]
    assert hubconf.dependencies and "segment_images" in hubconf.fewshot_segmenter.__doc__


def test_hub_load_bundled_generator_and_fresh_models(tmp_path):
    g = torch.hub.load(str(ROOT), "stylegan2_generator", source="local", trust_repo=True)
    assert isinstance(g, StyleGAN2Generator) and not g.training and g.config.size == 64
    fresh = torch.hub.load(str(ROOT), "stylegan2_generator", source="local", trust_repo=True, pretrained=False,
                           size=32, style_dim=32, n_mlp=2, channels={"4": 16, "8": 16, "16": 8, "32": 8})
    assert fresh.config.size == 32
    fresh.save_pretrained(tmp_path / "g")
    again = torch.hub.load(str(ROOT), "stylegan2_generator", source="local", trust_repo=True, name=str(tmp_path / "g"))
    assert torch.equal(again.input.input, fresh.input.input)


def test_hub_load_argument_errors():
    with pytest.raises(ValueError, match="1, 5 or 10 shots"):
        torch.hub.load(str(ROOT), "fewshot_segmenter", source="local", trust_repo=True, shots=3)
    with pytest.raises(ValueError, match="only apply with pretrained=False"):
        torch.hub.load(str(ROOT), "stylegan2_generator", source="local", trust_repo=True, size=32)
    with pytest.raises(ValueError, match="either name"):
        torch.hub.load(str(ROOT), "stylegan2_generator", source="local", trust_repo=True, name="a", repo_id="b/c")
    with pytest.raises(OSError, match="huggingface-cli download nobody/nothing"):
        torch.hub.load(str(ROOT), "autoshot_segmenter", source="local", trust_repo=True, repo_id="nobody/nothing")


@pytest.mark.parametrize("entry,cls", [("fewshot_segmenter", FewShotSegmenter),
                                       ("autoshot_segmenter", AutoShotSegmenter)])
def test_hub_load_bundled_segmenters(entry, cls):
    model = torch.hub.load(str(ROOT), entry, source="local", trust_repo=True)
    assert isinstance(model, cls) and not model.training


def test_every_bundled_artifact_is_a_valid_hub_repo_with_a_parsable_card():
    found = bundled_artifacts()
    assert {"toyfaces-64", "toyfaces-64-fewshot-10c-10shot", "toyfaces-64-autoshot-10c"} <= set(found)
    for name, folder in found.items():
        check_model_repo(folder)
        card = ModelCard.load(folder / "README.md")
        assert card.data.library_name == "gan_partseg" and card.data.license == "apache-2.0"
        if name != "toyfaces-64":  # later stages link to the stage they were built from, and carry figures
            assert card.data.base_model and card.data.base_model.startswith("gan-partseg/toyfaces-64")
            assert card.data.eval_results and all(0 < r.metric_value <= 1 for r in card.data.eval_results)
        copy = ModelCard.load(ROOT / "model_cards" / f"{name}.md")  # the repo's copy, regenerated together
        assert copy.data.to_dict() == card.data.to_dict()


def test_folders_the_package_writes_are_hub_repos(tmp_path, tiny_generator):
    torch.save({"g_ema": tiny_generator.state_dict(), "latent_avg": torch.zeros(32)}, tmp_path / "c.pt")
    assert cli_main(["convert", "rosinality", str(tmp_path / "c.pt"), str(tmp_path / "conv")]) == 0
    check_model_repo(tmp_path / "conv")
    assert "convert rosinality" in ModelCard.load(tmp_path / "conv" / "README.md").text
    model = AutoShotSegmenter(AutoShotSegmenterConfig(widths=[4, 8], id2label={0: "a", 1: "b"}))
    save_autoshot(model, tmp_path / "run" / "best")
    check_model_repo(tmp_path / "run" / "best")
    assert ModelCard.load(tmp_path / "run" / "best" / "README.md").data.pipeline_tag == "image-segmentation"


def test_invalid_folders_are_refused_with_reasons(tmp_path, tiny_generator):
    tiny_generator.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"README.md is missing.*pickled files \['pytorch_model.bin'\]"):
        check_model_repo(tmp_path / "m")


class FakeApi:
    """Records what push would send: the repo creation and the commit with every file's bytes."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def create_commit(self, repo_id, operations, **kw):
        files = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        self.calls.append(("create_commit", repo_id, files, kw))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/0"})()


def test_push_sends_one_commit_with_every_file():
    folder = bundled_artifacts()["toyfaces-64"]
    api = FakeApi()
    info = push_folder(folder, "me/toyfaces-64", private=True, revision="v1", api=api)
    (kind, repo, kw), (kind2, repo2, files, kw2) = api.calls
    assert (kind, repo, kw["private"], kw["exist_ok"]) == ("create_repo", "me/toyfaces-64", True, True)
    assert kind2 == "create_commit" and kw2["revision"] == "v1" and "Upload toyfaces-64" in kw2["commit_message"]
    assert {"config.json", "model.safetensors", "README.md", "discriminator/config.json",
            "discriminator/model.safetensors"} <= set(files)
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert info.commit_url.endswith("/commit/0")
    with pytest.raises(ValueError, match="owner/name"):
        push_folder(folder, "no-owner", api=FakeApi())


def test_cli_push_without_network_says_what_failed(tmp_path, tiny_generator, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = bundled_artifacts()["toyfaces-64"]
    code = cli_main(["push", str(folder), "me/toyfaces-64"])
    assert code == 2 and "gan-partseg push: error" in capsys.readouterr().err


def test_tiny_config_round_trip_through_fresh_hub_model():
    cfg = tiny_config()
    fresh = torch.hub.load(str(ROOT), "stylegan2_generator", source="local", trust_repo=True, pretrained=False,
                           **{k: getattr(cfg, k) for k in ("size", "style_dim", "n_mlp", "channels")})
    assert fresh.feature_shapes() == StyleGAN2Generator(cfg).feature_shapes()


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    from gan_partseg.files import atomic_folder

    out = tmp_path / "step"
    with atomic_folder(out, "checkpoint") as tmp:
        (tmp / "DONE").write_text("1")
    assert (out / "DONE").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_folder(out, "checkpoint") as tmp:
            (tmp / "b.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in out.iterdir()) == ["DONE"]  # the old folder, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step"]  # no temp folder left behind
    with atomic_folder(out, "checkpoint") as tmp:
        (tmp / "DONE").write_text("2")
        (tmp / "c.txt").write_text("two")
    assert sorted(p.name for p in out.iterdir()) == ["DONE", "c.txt"]


def test_a_saved_model_folder_is_readable_like_any_file_the_user_writes(tmp_path, tiny_generator):
    import os

    from gan_partseg.hub import save_pretrained_atomic

    mask = os.umask(0o022)
    try:
        save_pretrained_atomic(tiny_generator, tmp_path / "g")
    finally:
        os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "g").iterdir()}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) == {0o644}, modes  # safetensors alone wrote 0600


def test_the_readme_names_the_repository_once_and_its_hub_lines_run_against_a_local_clone(tmp_path):
    import functools
    import subprocess
    import tomllib
    from types import SimpleNamespace

    from gan_partseg import FewShotSegmenter

    block = (ROOT / "README.md").read_text().split("### torch.hub and the Hub")[1].split("```python")[1].split("```")[0]
    repo_line = next(ln for ln in block.splitlines() if ln.startswith("REPO = "))
    name = repo_line.split('"')[1]
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert url == f"https://github.com/{name}"  # one name: the README, hubconf and pyproject agree
    assert f'REPO = "{name}"' in (ROOT / "hubconf.py").read_text()
    for doc in [ROOT / "README.md", ROOT / "hubconf.py", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "OWNER/" not in doc.read_text(), doc
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    local = functools.partial(torch.hub.load, source="local", trust_repo=True)
    ns = {"torch": SimpleNamespace(hub=SimpleNamespace(load=local))}
    lines = [ln for ln in block.splitlines() if ln and ln != "import torch" and "repo_id=" not in ln]  # no network
    exec("\n".join(lines).replace(repo_line, f"REPO = {str(clone)!r}"), ns)
    assert isinstance(ns["g"], StyleGAN2Generator) and isinstance(ns["seg"], FewShotSegmenter)


def test_automodel_takes_bundled_names_offline_and_unknown_bare_names_get_the_model_classes_message(monkeypatch):
    from transformers import AutoConfig, AutoModel

    from gan_partseg import AutoShotSegmenter

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: a bundled name never needs one
    g = AutoModel.from_pretrained("toyfaces-64")
    assert isinstance(g, StyleGAN2Generator) and g.config.size == 64
    assert isinstance(AutoModel.from_pretrained("toyfaces-64-autoshot-10c"), AutoShotSegmenter)
    assert AutoConfig.from_pretrained("toyfaces-64").model_type == "stylegan2"
    with pytest.raises(OSError, match="neither a bundled gan_partseg artifact .*toyfaces-64"):
        AutoModel.from_pretrained("toyfaces-65")


def test_small_models_load_without_a_progress_bar_and_the_setting_is_restored(capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()  # whatever an earlier test left
    StyleGAN2Generator.from_pretrained("toyfaces-64")
    assert "Loading weights" not in capfd.readouterr().err  # 2 MB: instant, so no bar
    assert hf_logging.is_progress_bar_enabled()


def test_the_segmentation_pipeline_takes_a_bundled_name_without_touching_the_network(monkeypatch):
    import socket

    import numpy as np
    from PIL import Image
    from transformers import pipeline

    asked = []

    def no_network(host, *args, **kwargs):
        asked.append(host)
        raise OSError(f"test: no network ({host})")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # online mode: every component lookup could ask the Hub
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    seg = pipeline("image-segmentation", model="toyfaces-64-autoshot-10c")
    results = seg(Image.fromarray(np.full((64, 64, 3), 128, np.uint8)))
    assert asked == [] and results and all(r["mask"].size == (64, 64) for r in results)
