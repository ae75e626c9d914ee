"""AutoShotSegmenter: a U-Net that segments images directly (stage 3).

Trained on (image, label) pairs the few-shot segmenter generates, it answers in
milliseconds where inversion takes seconds. The architecture follows the
official auto-shot network (docs/method.md section 5): a U-Net of double 3x3 convs
with batch norm and ReLU, max-pool down, bilinear up, skip connections; the
widths are a config field (official: 64-128-256-512-512).

    seg = AutoShotSegmenter.from_pretrained("toyfaces-64-autoshot-10c")
    labels = seg.segment(pil_image)            # (H, W) int64 at the image's own size

It also works in transformers' ``pipeline("image-segmentation", model=seg, image_processor=...)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SemanticSegmenterOutput

from gan_partseg.errors import ArgumentError, ModelFolderError
from gan_partseg.hub import ResolveBundledMixin
from gan_partseg.images import byte_images_to_unit
from gan_partseg.models.processing import AutoShotImageProcessor


class AutoShotSegmenterConfig(PreTrainedConfig):
    """U-Net config.

    Args:
        widths: channels per level, top to bottom (depth = len(widths) - 1 poolings).
        in_channels: 3 (RGB in [-1, 1]).
        image_size: the size it was trained at (the image processor resizes to it).
        id2label: class id -> name.
        source_segmenter: the few-shot segmenter whose labels it learned (name or path).
        input_statistics: what its training images look like to it, for the out-of-distribution warning
            (:meth:`AutoShotSegmenter.fit_input_statistics` writes it, and the buffers ``ood_mean``,
            ``ood_std``, ``ood_precision`` beside the weights; None: no warning): ``threshold`` (the largest
            input score that passes without a warning), ``n_images``, ``shrinkage``, ``margin``.
    """

    model_type = "gan_partseg_autoshot"

    widths: list | tuple = (32, 64, 128, 256)
    in_channels: int = 3
    image_size: int = 64
    source_segmenter: str | None = None
    input_statistics: dict | None = None

    def __post_init__(self, **kwargs):
        self.widths = [int(w) for w in self.widths]
        if len(self.widths) < 2:
            raise ArgumentError(f"widths needs at least two levels, got {self.widths}")
        super().__post_init__(**kwargs)


class OutOfDistributionWarning(UserWarning):
    """An input far from the images the auto-shot U-Net was trained on: its labels are likely wrong."""


#: the out-of-distribution threshold: this many times the largest score among training images the statistics
#: did not see (fit_input_statistics). On the bundled U-Net, held-out renders stay below it and noise, flat
#: colours, a flag and smooth blobs warn (tests/test_autoshot.py)
OOD_MARGIN = 1.5
MIN_STATISTICS_IMAGES = 30  # fewer leave the held-out third too small to set the threshold


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AutoShotSegmenter(ResolveBundledMixin, PreTrainedModel):
    config_class = AutoShotSegmenterConfig
    main_input_name = "pixel_values"
    base_model_prefix = "unet"
    #: run the convolutions on channels-last activations (oneDNN's fast path on the CPU; cuDNN's under AMP).
    #: Same maths; set False on a backend where NCHW is faster. benchmarks/realimage_latency.py measures both.
    channels_last: bool = True

    def __init__(self, config: AutoShotSegmenterConfig):
        super().__init__(config)
        w = config.widths
        self.down = nn.ModuleList([DoubleConv(config.in_channels, w[0])] +
                                  [DoubleConv(a, b) for a, b in zip(w[:-1], w[1:])])
        self.up = nn.ModuleList([DoubleConv(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1))])
        self.classifier = nn.Conv2d(w[0], len(config.id2label), 1)
        if config.input_statistics:
            self._add_statistics_buffers()
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            if module.running_mean is not None:
                nn.init.zeros_(module.running_mean)
                nn.init.ones_(module.running_var)

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.config.id2label.items()}

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder: (B, in_channels, H, W) -> one map per level, (B, widths[l], H / 2^l, W / 2^l)
        (H and W divisible by 2^(levels - 1))."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        return skips

    def _add_statistics_buffers(self) -> None:
        d = 2 * self.config.widths[-1]  # channel means and stds of the deepest encoder map
        for name, value in (("ood_mean", torch.zeros(d)), ("ood_std", torch.ones(d)), ("ood_precision", torch.eye(d))):
            if not hasattr(self, name):
                self.register_buffer(name, value.to(self.classifier.weight.device))

    def _features(self, deepest: torch.Tensor) -> torch.Tensor:
        f = deepest.float()
        return torch.cat([f.mean((2, 3)), f.std((2, 3))], 1)

    def _scores(self, deepest: torch.Tensor) -> torch.Tensor:
        return self._scores_of_features(self._features(deepest))

    @torch.no_grad()
    def input_scores(self, images) -> torch.Tensor:
        """How far each image is from the training images, as the U-Net sees them: a (B, 3, H, W) tensor in
        [-1, 1], or what :meth:`segment` takes (PIL images / uint8 arrays, preprocessed as it does) -> (B,)
        the Mahalanobis distance (per feature, so training images score about 1) of the channel means and
        stds of its deepest encoder map; above ``config.input_statistics["threshold"]`` warns."""
        if not self.config.input_statistics:
            raise ModelFolderError("this model stores no input statistics (trained before 2026-12-03); "
                                   "model.fit_input_statistics(training images) adds them")
        if not isinstance(images, torch.Tensor):
            items = list(images) if isinstance(images, (list, tuple)) else [images]
            images = self._processor()(images=items, return_tensors="pt")["pixel_values"]
        return self._scores(self.encode(images.to(self.device, self.dtype))[-1]).cpu()

    def is_far(self, images) -> bool:
        """Whether any of ``images`` (as :meth:`input_scores` takes) would raise the OutOfDistributionWarning;
        False for a model without input statistics. Thread-safe, unlike catching the warning."""
        stats = self.config.input_statistics
        return bool(stats) and float(self.input_scores(images).max()) > stats["threshold"]

    @torch.no_grad()
    def fit_input_statistics(self, pixel_values: torch.Tensor, batch_size: int = 64, shrinkage: float = 0.1) -> dict:
        """Learn what the training images (N, 3, H, W) in [-1, 1] (or uint8 0..255, converted a batch at a time),
        N >= MIN_STATISTICS_IMAGES, look like to the U-Net (eval
        mode): the mean, std and (shrunk) precision of its deepest map's channel means and stds, from the
        first two thirds; the warning threshold is ``OOD_MARGIN`` times the largest score of the last third,
        images the statistics never saw. Stored as buffers and ``config.input_statistics``; returned."""
        if len(pixel_values) < MIN_STATISTICS_IMAGES:
            raise ArgumentError(f"fit_input_statistics needs at least {MIN_STATISTICS_IMAGES} training images, "
                                f"got {len(pixel_values)}")
        was_training = self.training
        self.eval()
        def batch(i: int) -> torch.Tensor:
            x = pixel_values[i: i + batch_size].to(self.device)
            return (byte_images_to_unit(x) if x.dtype == torch.uint8 else x).to(self.dtype)

        feats = torch.cat([self._features(self.encode(batch(i))[-1]) for i in range(0, len(pixel_values), batch_size)])
        self.train(was_training)
        fit, held = feats[: 2 * len(feats) // 3], feats[2 * len(feats) // 3:]
        mean, std = fit.mean(0), fit.std(0).clamp_min(1e-6)
        cov = torch.cov(((fit - mean) / std).T)
        cov = (1 - shrinkage) * cov + shrinkage * torch.eye(len(mean), device=cov.device)  # few images, many features
        self.config.input_statistics = {"n_images": len(feats), "shrinkage": shrinkage, "margin": OOD_MARGIN}
        self._add_statistics_buffers()
        self.ood_mean.copy_(mean), self.ood_std.copy_(std), self.ood_precision.copy_(torch.linalg.inv(cov))
        scores = self._scores_of_features(held)
        self.config.input_statistics.update(threshold=float(OOD_MARGIN * scores.max()),
                                            unseen_training_score_max=float(scores.max()))
        return self.config.input_statistics

    def _scores_of_features(self, feats: torch.Tensor) -> torch.Tensor:
        z = (feats - self.ood_mean) / self.ood_std
        return ((z @ self.ood_precision) * z).sum(1).div(z.shape[1]).sqrt()

    def _warn_if_far(self, deepest: torch.Tensor) -> None:
        """An OutOfDistributionWarning when an input scores above the stored threshold (Python's default
        warning filter shows it once per session; the Space records each one)."""
        stats = self.config.input_statistics
        if self.training or not stats:
            return
        worst = float(self._scores(deepest).max())
        if worst > stats["threshold"]:
            warnings.warn(f"gan_partseg: this image is far from what the auto-shot U-Net was trained on (score "
                          f"{worst:.1f}; unseen training images score up to {stats['unseen_training_score_max']:.1f}): "
                          f"its labels are likely wrong. The model learned the world of "
                          f"{self.config.source_segmenter or 'its training data'}: give it images like those, "
                          "or train one on yours.", OutOfDistributionWarning, stacklevel=3)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                return_dict: bool = True) -> SemanticSegmenterOutput:
        """pixel_values: (B, 3, H, W) in [-1, 1], any H, W -> logits (B, n_classes, H, W).

        ``labels`` (B, H, W) class ids or (B, n_classes, H, W) soft targets add a cross-entropy loss.
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.in_channels:
            raise ValueError(f"pixel_values must be (B, {self.config.in_channels}, H, W), "
                             f"got {tuple(pixel_values.shape)}")
        h, w = pixel_values.shape[-2:]
        m = 2 ** (len(self.config.widths) - 1)
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(pixel_values, [0, pw, 0, ph], mode="replicate") if ph or pw else pixel_values
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        skips = self.encode(x)
        self._warn_if_far(skips[-1])
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        logits = self.classifier(x)[:, :, :h, :w]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels if labels.ndim == 3 else labels.float())
        return SemanticSegmenterOutput(loss=loss, logits=logits)

    def segment(self, images, batch_size: int = 32) -> torch.Tensor | list[torch.Tensor]:
        """Label maps at each input's own size.

        images: a PIL image, an (H, W, 3) uint8 array, a (B, 3, H, W) tensor in [-1, 1], or a list of
        PIL images / arrays. Returns (H, W) int64 for one image, a list (or (B, H, W) for a tensor) otherwise.
        Runs under ``torch.inference_mode`` (faster than ``no_grad``); the returned maps are ordinary
        tensors (cloned out of inference mode), so callers may edit them in place.
        """
        with torch.inference_mode():
            out = self._segment(images, batch_size)
        return out.clone() if isinstance(out, torch.Tensor) else [r.clone() for r in out]

    def _processor(self) -> AutoShotImageProcessor:
        proc = self.__dict__.get("_image_processor")
        if proc is None:  # built once: segment() is the millisecond path
            proc = AutoShotImageProcessor(size={"height": self.config.image_size, "width": self.config.image_size})
            self.__dict__["_image_processor"] = proc
        return proc

    def _segment(self, images, batch_size: int) -> torch.Tensor | list[torch.Tensor]:
        was_training = self.training
        if was_training:  # toggling costs ~0.5 ms per call, a tenth of the whole answer: only when needed
            self.eval()
        try:
            if isinstance(images, torch.Tensor):
                outs = [self(images[i: i + batch_size].to(self.device)).logits.argmax(1)
                        for i in range(0, images.shape[0], batch_size)]
                return torch.cat(outs).cpu()
            single = not isinstance(images, (list, tuple))
            items = [images] if single else list(images)
            proc = self._processor()
            results = []
            for i in range(0, len(items), batch_size):
                chunk = items[i: i + batch_size]
                sizes = [_size_of(x) for x in chunk]
                inputs = proc(images=chunk, return_tensors="pt")
                out = self(inputs["pixel_values"].to(self.device, self.dtype))
                results += proc.post_process_semantic_segmentation(out, target_sizes=sizes)
            return results[0] if single else results
        finally:
            if was_training:
                self.train()


def _size_of(image) -> tuple[int, int]:
    if hasattr(image, "size") and not isinstance(image, np.ndarray):
        w, h = image.size
        return h, w
    arr = np.asarray(image)
    return arr.shape[0], arr.shape[1]


__all__: Sequence[str] = ["AutoShotSegmenter", "AutoShotSegmenterConfig", "OutOfDistributionWarning"]
