"""``torch.hub`` entry points of gan_partseg.

    import torch
    REPO = "gan-partseg/gan_partseg"  # the GitHub repository (pyproject.toml's [project.urls])
    g = torch.hub.load(REPO, "stylegan2_generator")                                 # bundled toyfaces-64
    seg = torch.hub.load(REPO, "fewshot_segmenter", shots=10)                       # 10-shot, 10 classes
    unet = torch.hub.load(REPO, "autoshot_segmenter")
    g = torch.hub.load("path/to/clone", "stylegan2_generator", source="local")      # a local clone
    g = torch.hub.load(REPO, "stylegan2_generator", repo_id="you/your-ffhq-256")    # a model repo on the HF Hub

Every entry point returns a transformers ``PreTrainedModel`` in eval mode. ``pretrained=True``
loads the embedded weights that ship inside the package (no download); ``name`` picks another
bundled artifact or a local model folder; ``repo_id`` (+ ``revision``) a Hugging Face Hub repo.
``pretrained=False`` builds a randomly initialised model from ``config`` keyword arguments.
"""

import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "transformers", "safetensors", "huggingface_hub", "numpy", "PIL", "tqdm"]

_ROOT = _Path(__file__).resolve().parent
if str(_ROOT) not in _sys.path:  # torch.hub imports this file from the repo root; the package sits beside it
    _sys.path.insert(0, str(_ROOT))


def _load(cls, default: str, pretrained: bool, name, repo_id, revision, config_kwargs, **kwargs):
    from gan_partseg.errors import ArgumentError

    if not pretrained:
        if name or repo_id:
            raise ArgumentError("pretrained=False builds a fresh model: name / repo_id would be ignored")
        return cls(cls.config_class(**config_kwargs)).eval()
    if config_kwargs:
        raise ArgumentError(f"config arguments {sorted(config_kwargs)} only apply with pretrained=False")
    if name and repo_id:
        raise ArgumentError("pass either name (bundled artifact or folder) or repo_id (Hugging Face Hub), not both")
    source = repo_id or name or default
    if revision is not None:
        kwargs["revision"] = revision
    return cls.from_pretrained(source, **kwargs).eval()


def stylegan2_generator(pretrained: bool = True, name: str | None = None, repo_id: str | None = None,
                        revision: str | None = None, **config):
    """A StyleGAN2 generator (rosinality layout) that also returns every synthesis layer's activations.

    Default: the bundled ``toyfaces-64`` (64 px toy faces). ``g([z], return_features=True)`` returns
    images (B, 3, H, W) in [-1, 1] and ``features`` (layer -> (B, C, r, r)).
    """
    from gan_partseg import StyleGAN2Generator

    return _load(StyleGAN2Generator, "toyfaces-64", pretrained, name, repo_id, revision, config)


def fewshot_segmenter(pretrained: bool = True, name: str | None = None, repo_id: str | None = None,
                      revision: str | None = None, shots: int = 10, **config):
    """A few-shot part segmenter (a head on generator activations) with its generator attached.

    Default: the bundled ``toyfaces-64-fewshot-10c-{shots}shot`` (shots 1, 5 or 10; 10 face classes).
    ``seg.segment_latents(w)`` labels generated images; ``seg.segment_images(x)`` real ones (inversion).
    """
    from gan_partseg import FewShotSegmenter
    from gan_partseg.errors import ArgumentError

    if pretrained and not (name or repo_id) and shots not in (1, 5, 10):
        raise ArgumentError(f"the bundled few-shot segmenters have 1, 5 or 10 shots, not {shots}")
    return _load(FewShotSegmenter, f"toyfaces-64-fewshot-10c-{shots}shot", pretrained, name, repo_id, revision,
                 config)


def autoshot_segmenter(pretrained: bool = True, name: str | None = None, repo_id: str | None = None,
                       revision: str | None = None, **config):
    """The auto-shot U-Net: segments images directly. ``unet.segment(pil_image)`` -> (H, W) class ids.

    Default: the bundled ``toyfaces-64-autoshot-10c``.
    """
    from gan_partseg import AutoShotSegmenter

    return _load(AutoShotSegmenter, "toyfaces-64-autoshot-10c", pretrained, name, repo_id, revision, config)
