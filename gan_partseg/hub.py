"""Saving and resolving model folders: atomic save_pretrained and the registry of bundled artifacts.

``from_pretrained(name)`` on every gan_partseg model resolves, in order:
1. a bundled artifact name (``toyfaces-64``, ...): a folder inside the package;
2. a local folder;
3. a Hugging Face Hub id (downloaded / taken from the local HF cache).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from gan_partseg.errors import ArgumentError, MissingFileError, ModelFolderError, OutputError
from gan_partseg.files import atomic_folder

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
            raise MissingFileError(f"{text} is a folder without config.json: not a gan_partseg model folder")
        return text
    if "/" not in text:
        listed = ", ".join(artifacts) or "(none bundled in this install)"
        raise ModelFolderError(f"unknown pretrained name {text!r}. Bundled artifacts: {listed}. "
                               "Otherwise pass a model folder or a Hub id 'owner/name'.")
    return text


def resolve_bundled_names(auto_cls) -> None:
    """Let ``auto_cls.from_pretrained`` (AutoConfig, AutoModel, ...) take bundled artifact names, as the model
    classes do: a bundled name that is not also a local path loads the bundled folder, without the network.
    Everything else goes to transformers unchanged (Hub ids, HF_HUB_OFFLINE, the cache); a bare name that is
    neither bundled nor found gets the model classes' message instead of a bare OSError."""
    original = auto_cls.from_pretrained
    if getattr(original, "_resolves_bundled", False):
        return

    def from_pretrained(pretrained_model_name_or_path, *args, **kwargs):
        text = str(pretrained_model_name_or_path)
        artifacts = bundled_artifacts()
        if text in artifacts and not Path(text).exists():
            return original(str(artifacts[text]), *args, **kwargs)
        try:
            return original(pretrained_model_name_or_path, *args, **kwargs)
        except OSError as err:
            if "/" in text or Path(text).exists():
                raise
            listed = ", ".join(artifacts) or "(none bundled in this install)"
            raise MissingFileError(f"{text!r} is neither a bundled gan_partseg artifact ({listed}) nor a model that could be "
                                   f"loaded ({str(err).splitlines()[0]}); pass a bundled name, a model folder or a Hub id "
                                   "'owner/name'") from err

    from_pretrained._resolves_bundled = True
    from_pretrained.__doc__ = original.__doc__
    auto_cls.from_pretrained = staticmethod(from_pretrained)


#: the pipeline() arguments that may name a model folder
PIPELINE_NAMED = ("model", "config", "tokenizer", "feature_extractor", "image_processor", "video_processor", "processor")


def resolve_bundled_pipeline_names() -> None:
    """Let ``transformers.pipeline`` take bundled artifact names: each named component that is a bundled
    name (and not a local path) becomes the bundled folder before transformers sees it, so none of the
    pipeline's component lookups (tokenizer, processors, ...) asks the network for a name it cannot know."""
    import functools

    import transformers
    import transformers.pipelines as pipelines

    original = pipelines.pipeline
    if getattr(original, "_resolves_bundled", False):
        return

    def local(value):
        artifacts = bundled_artifacts()
        return str(artifacts[value]) if isinstance(value, str) and value in artifacts and not Path(value).exists() else value

    @functools.wraps(original)
    def pipeline(*args, **kwargs):
        args = [local(a) if i == 1 else a for i, a in enumerate(args)]  # pipeline(task, model, config, ...)
        kwargs = {k: local(v) if k in PIPELINE_NAMED else v for k, v in kwargs.items()}
        return original(*args, **kwargs)

    pipeline._resolves_bundled = True
    pipelines.pipeline = pipeline
    transformers.pipeline = pipeline  # `from transformers import pipeline` after `import gan_partseg`


KINDS = {
    "stylegan2": "a StyleGAN2 generator (StyleGAN2Generator)",
    "stylegan2_discriminator": "a StyleGAN2 discriminator (StyleGAN2Discriminator)",
    "gan_partseg_fewshot": "a few-shot segmenter (FewShotSegmenter)",
    "gan_partseg_autoshot": "an auto-shot U-Net (AutoShotSegmenter)",
}


def weights_fingerprint(*models) -> str:
    """A short hash (16 hex digits) of the models' weights and buffers, in order.

    Identifies *which* weights made a cache or a generated data set, where names cannot: a re-trained
    generator shipped under the same name gets a new fingerprint. Hashes every state-dict entry's
    name, dtype, shape and bytes (about 0.3 s for a 1024 px config-f generator).
    """
    import hashlib

    digest = hashlib.sha256()
    for model in models:
        _hash_tensors(digest, model.state_dict())
        digest.update(b"||")
    return digest.hexdigest()[:16]


def tensor_digest(tensors) -> str:
    """SHA-256 (hex) over a state dict's sorted names, dtypes, shapes and bytes."""
    import hashlib

    digest = hashlib.sha256()
    _hash_tensors(digest, tensors)
    return digest.hexdigest()


def _hash_tensors(digest, tensors) -> None:
    import torch

    for name, tensor in sorted(tensors.items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


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
        raise ModelFolderError(f"{config} is not valid JSON ({err}); the model folder is damaged") from None
    if found != expected:
        what = KINDS.get(found, f"a model of type {found!r}")
        raise ModelFolderError(f"{Path(path) / subfolder} holds {what}, but {cls.__name__} needs "
                               f"{KINDS.get(expected, expected)}; pass the right folder")


class ResolveBundledMixin:
    """Adds bundled-name resolution in front of transformers' ``from_pretrained``."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        path = resolve_pretrained(pretrained_model_name_or_path)
        check_model_type(cls, path, kwargs.get("subfolder", ""))
        folder = Path(path) / kwargs.get("subfolder", "")
        try:
            with _quiet_when_small(folder):
                return super().from_pretrained(path, *args, **kwargs)
        except OSError as err:
            if "/" in str(path) and not Path(path).exists():
                raise MissingFileError(
                    f"could not load {path!r} from the Hugging Face Hub or its local cache ({err}). "
                    "Without a network, download the repo on a connected machine "
                    f"(`huggingface-cli download {path} --local-dir DIR`) and pass DIR."
                ) from err
            why = damaged_folder_message(cls, folder) if folder.is_dir() else None
            if why:
                raise ModelFolderError(why) from None
            if folder.is_dir():  # a local folder transformers cannot read (e.g. no weights file): the folder's fault
                what = KINDS.get(getattr(cls.config_class, "model_type", None), cls.__name__)
                why = str(err).partition("\n")[0]
                raise ModelFolderError(f"{folder} could not be loaded as {what} ({why}): "
                                       "save or convert the model again, or pass the right folder") from err
            if Path(path).is_dir():  # a local model folder without the subfolder asked for (e.g. discriminator/)
                raise MissingFileError(f"{folder} does not exist: {path} holds no {kwargs.get('subfolder')}/ model "
                                       f"({cls.__name__}); convert or save it with one (convert --discriminator "
                                       "writes discriminator/)") from err
            raise
        except Exception:  # a local folder with a damaged file: name it instead of transformers' internals
            why = damaged_folder_message(cls, folder) if folder.is_dir() else None
            if why:
                raise ModelFolderError(why) from None
            raise  # anything else is a real fault and keeps its traceback


SLOW_LOAD_BYTES = 200 * 2**20
"""Weights smaller than this load in well under a second: transformers' "Loading weights" bar is hidden for them."""


@contextlib.contextmanager
def _quiet_when_small(folder: Path):
    from transformers.utils import logging as hf_logging

    small = folder.is_dir() and sum(p.stat().st_size for p in folder.glob("*.safetensors")) < SLOW_LOAD_BYTES
    was_on = hf_logging.is_progress_bar_enabled()
    if small and was_on:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if small and was_on:
            hf_logging.enable_progress_bar()


def damaged_folder_message(cls, folder: Path) -> str | None:
    """What is wrong with a local model folder that did not load: a corrupt weights file or config.json fields
    missing (None: neither, so the failure is not the folder's)."""
    from safetensors import safe_open

    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt") as f:
                for name in f.keys():
                    f.get_slice(name)
        except Exception as bad:  # noqa: BLE001 -- any failure to read the header means a damaged file
            return (f"{weights} is corrupt or truncated ({str(bad).splitlines()[0]}): download the model again, or "
                    "re-save it (save_pretrained / the command that wrote it)")
    config_path = folder / "config.json"
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict):
        expected = cls.config_class().to_dict()
        missing = sorted(k for k in expected if k not in saved and not k.startswith("_") and k not in HF_CONFIG_KEYS)
        if missing:
            return (f"{config_path} lacks the fields {', '.join(missing)}, so the weights cannot be placed: it was "
                    f"not written by save_pretrained of {cls.__name__}; convert or save the model again")
    return None


HF_CONFIG_KEYS = {"transformers_version", "architectures", "dtype", "torch_dtype", "return_dict",
                  "output_hidden_states", "output_attentions", "id2label", "label2id", "problem_type",
                  "tie_word_embeddings", "chunk_size_feed_forward", "is_encoder_decoder", "add_cross_attention",
                  "pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id",
                  "tokenizer_class", "prefix", "task_specific_params", "cross_attention_hidden_size",
                  "tf_legacy_loss", "use_bfloat16", "finetuning_task", "is_decoder", "pruned_heads"}
"""Keys every transformers config carries: their absence says nothing about the architecture."""


def save_pretrained_atomic(model, out_dir: str | os.PathLike, card=None, overwrite: bool = True,
                           extra_files: dict[str, str] | None = None, **kwargs) -> Path:
    """``model.save_pretrained`` (+ the model ``card`` as README.md, + ``extra_files`` name -> text) into a temp
    folder, then swap it in.

    Only an absent or empty ``out_dir``, or an earlier model folder of this package (with ``overwrite``), is
    replaced; anything else raises :class:`gan_partseg.files.OutputError` before writing."""
    out = Path(out_dir)
    with atomic_folder(out, "model folder", overwrite) as tmp:
        model.save_pretrained(tmp, **kwargs)
        if card is not None:
            (tmp / "README.md").write_text(str(card), encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return out


HUB_REQUIRED = ("config.json", "README.md")
HUB_REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_model_repo(folder: str | os.PathLike) -> list[Path]:
    """The files a model folder would upload; raises when it is not a valid Hub model repo.

    Valid: ``config.json``, at least one ``.safetensors`` file, a ``README.md`` model card with YAML
    front matter, and no pickled weights (``.bin``, ``.pt``, ``.pkl`` ...). Temp files (``.*``) are left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    names = {p.relative_to(folder).as_posix() for p in files}
    problems = [f"{r} is missing" for r in HUB_REQUIRED if r not in names]
    if not any(n.endswith(".safetensors") for n in names):
        problems.append("no .safetensors weights")
    pickled = sorted(n for n in names if n.endswith(HUB_REFUSED_SUFFIXES))
    if pickled:
        problems.append(f"pickled files {pickled} (ship safetensors only)")
    readme = folder / "README.md"
    if readme.is_file() and not readme.read_text(encoding="utf-8").startswith("---\n"):
        problems.append("README.md has no YAML front matter (write it with gan_partseg.cards)")
    if problems:
        raise ModelFolderError(f"{folder} is not a valid Hub model repo: " + "; ".join(problems))
    return files


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, token: str | None = None, api=None):
    """Upload a model folder to the Hugging Face Hub as one commit; returns the commit info.

    Creates the repo when needed (``exist_ok``). ``api`` defaults to ``huggingface_hub.HfApi(token=token)``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ArgumentError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    folder = Path(folder)
    files = check_model_repo(folder)
    api = api or HfApi(token=token)
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                  for p in files]
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        return api.create_commit(repo_id, operations=operations, repo_type="model", revision=revision,
                                 commit_message=commit_message or f"Upload {folder.name} with gan_partseg")
    except OSError as err:  # offline, no token, no write access, a refused name: huggingface_hub's OSErrors
        why = str(err).partition("\n")[0]
        raise OutputError(f"could not push {folder} to {repo_id} ({why}); no commit was made. "
                          "Check the network (and that HF_HUB_OFFLINE is unset), log in with `hf auth login`, or pass "
                          "a token with write access to that repo") from err
