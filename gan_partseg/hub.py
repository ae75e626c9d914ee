"""Saving and resolving model folders: atomic save_pretrained and the registry of bundled artifacts.

``from_pretrained(name)`` on every gan_partseg model resolves, in order:
1. a bundled artifact name (``toyfaces-64``, ...): a folder inside the package;
2. a local folder;
3. a Hugging Face Hub id (downloaded / taken from the local HF cache).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


def bundled_artifacts() -> dict[str, Path]:
    """Name -> folder of every artifact shipped inside the package (folders with a config.json)."""
    if not ARTIFACTS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(ARTIFACTS_DIR.iterdir()) if (p / "config.json").is_file()}


def resolve_pretrained(name_or_path: str | os.PathLike) -> str:
    """Map a bundled artifact name to its folder; pass paths and hub ids through.

    Raises a clear error for a name that looks like neither (no '/', not a folder).
    """
    text = str(name_or_path)
    artifacts = bundled_artifacts()
    if text in artifacts:
        return str(artifacts[text])
    if Path(text).exists():
        if not (Path(text) / "config.json").is_file():
            raise FileNotFoundError(f"{text} is a folder without config.json: not a gan_partseg model folder")
        return text
    if "/" not in text:
        listed = ", ".join(artifacts) or "(none bundled in this install)"
        raise ValueError(f"unknown pretrained name {text!r}. Bundled artifacts: {listed}. "
                         "Otherwise pass a model folder or a Hub id 'owner/name'.")
    return text


KINDS = {
    "stylegan2": "a StyleGAN2 generator (StyleGAN2Generator)",
    "stylegan2_discriminator": "a StyleGAN2 discriminator (StyleGAN2Discriminator)",
    "gan_partseg_fewshot": "a few-shot segmenter (FewShotSegmenter)",
    "gan_partseg_autoshot": "an auto-shot U-Net (AutoShotSegmenter)",
}


def check_model_type(cls, path: str, subfolder: str = "") -> None:
    """Refuse a local model folder of another kind, naming both kinds (transformers would only warn)."""
    config = Path(path) / subfolder / "config.json"
    expected = getattr(getattr(cls, "config_class", None), "model_type", None)
    if not expected or not config.is_file():
        return
    import json

    try:
        found = json.loads(config.read_text()).get("model_type")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{config} is not valid JSON ({err}); the model folder is damaged") from None
    if found != expected:
        what = KINDS.get(found, f"a model of type {found!r}")
        raise ValueError(f"{Path(path) / subfolder} holds {what}, but {cls.__name__} needs "
                         f"{KINDS.get(expected, expected)}; pass the right folder")


class ResolveBundledMixin:
    """Adds bundled-name resolution in front of transformers' ``from_pretrained``."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        path = resolve_pretrained(pretrained_model_name_or_path)
        check_model_type(cls, path, kwargs.get("subfolder", ""))
        try:
            return super().from_pretrained(path, *args, **kwargs)
        except OSError as err:
            if "/" in str(path) and not Path(path).exists():
                raise OSError(
                    f"could not load {path!r} from the Hugging Face Hub or its local cache ({err}). "
                    "Without a network, download the repo on a connected machine "
                    f"(`huggingface-cli download {path} --local-dir DIR`) and pass DIR."
                ) from err
            raise


def save_pretrained_atomic(model, out_dir: str | os.PathLike, **kwargs) -> Path:
    """``model.save_pretrained`` into a temp folder beside ``out_dir``, then swap it in."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, **kwargs)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out
