"""FewShotSegmenter: a small head on a StyleGAN2's per-layer activations.

The model holds only the head; the generator it reads is named in its config
(bundled name, folder or Hub id) and loaded on first use, or passed in.

    seg = FewShotSegmenter.from_pretrained("toyfaces-64-fewshot-10c-10shot")
    out = seg.segment_latents(w)            # w: (B, style_dim), (B, n_latent, style_dim)
    out.labels  # (B, H, W) int64 class ids;  out.logits (B, n_classes, H, W);  out.images (B, 3, H, W)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from gan_partseg.errors import ArgumentError, ModelFolderError
from gan_partseg.hub import ResolveBundledMixin
from gan_partseg.inversion.latent_optimizer import LatentOptimizer
from gan_partseg.models.features import check_modes, select_layers
from gan_partseg.models.heads import SegmentationHead
from gan_partseg.models.stylegan2 import StyleGAN2Generator


class FewShotSegmenterConfig(PreTrainedConfig):
    """Head + feature specification + the generator it belongs to.

    Args:
        head: "cnn", "mlp" or "ensemble". cnn_size: "S", "M", "L". mlp_hidden_layers: 0, 1, 2.
        ensemble_size: members of an ensemble head.
        generator: the generator's bundled name, folder or Hub id.
        feature_layers: layer names in order (default at build time: every synthesis conv).
        feature_channels: layer -> channels (fixes the projection's shape).
        output_size: resolution of the logits (default: the generator's size).
        up_mode / down_mode: resize modes (bilinear with align_corners=True / area).
        checkpoint_body: activation checkpointing of the head body while training.
        id2label: class id -> name (background first).
    """

    model_type = "gan_partseg_fewshot"

    head: str = "cnn"
    cnn_size: str = "L"
    dilation_rule: str = "paper"  # "scale": CNN dilations follow output_size (models/heads.DILATION_RULES)
    mlp_hidden_layers: int = 1
    ensemble_size: int = 10
    generator: str = "toyfaces-64"
    feature_layers: list | None = None
    feature_channels: dict | None = None
    output_size: int | None = None
    up_mode: str = "bilinear"
    down_mode: str = "area"
    checkpoint_body: bool = False

    def __post_init__(self, **kwargs):
        check_modes(self.up_mode, self.down_mode)
        if self.feature_channels is not None and self.feature_layers is None:
            self.feature_layers = list(self.feature_channels)
        super().__post_init__(**kwargs)

    @classmethod
    def for_generator(cls, generator: StyleGAN2Generator, generator_name: str, id2label: Mapping[int, str],
                      layers: Sequence[str] | None = None, output_size: int | None = None, **head_fields):
        """A config whose feature specification matches ``generator`` (all layers by default)."""
        shapes = generator.feature_shapes()
        layers = list(layers) if layers else list(shapes)
        unknown = [n for n in layers if n not in shapes]
        if unknown:
            raise ArgumentError(f"unknown feature layers {unknown}; the generator has {list(shapes)}")
        return cls(generator=str(generator_name), feature_layers=layers,
                   feature_channels={n: shapes[n][0] for n in layers},
                   output_size=output_size or generator.config.size,
                   id2label={int(k): v for k, v in id2label.items()}, **head_fields)


@dataclass
class SegmentationOutput(ModelOutput):
    """labels: (B, H, W) int64; logits: (B, n_classes, H, W); images: (B, 3, H, W) in [-1, 1] or None;
    member_logits: (B, M, n_classes, H, W) for ensembles."""

    labels: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    images: torch.Tensor | None = None
    member_logits: torch.Tensor | None = None
    inversion: object | None = None


class FewShotSegmenter(ResolveBundledMixin, PreTrainedModel):
    config_class = FewShotSegmenterConfig
    main_input_name = "features"
    base_model_prefix = "fewshot"

    def __init__(self, config: FewShotSegmenterConfig):
        super().__init__(config)
        if not config.feature_channels:
            raise ValueError("FewShotSegmenterConfig needs feature_channels; build it with "
                             "FewShotSegmenterConfig.for_generator(generator, name, id2label)")
        self.head = SegmentationHead(
            {n: config.feature_channels[n] for n in config.feature_layers}, n_classes=len(config.id2label),
            head=config.head, cnn_size=config.cnn_size, mlp_hidden_layers=config.mlp_hidden_layers,
            ensemble_size=config.ensemble_size, checkpoint_body=config.checkpoint_body,
            dilation_rule=config.dilation_rule, output_size=config.output_size)
        self.__dict__["_generator"] = None
        self.post_init()

    def _init_weights(self, module):
        if hasattr(module, "reset_parameters"):  # every layer of a head has one (PointwiseProjection too)
            module.reset_parameters()

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.config.id2label.items()}

    @property
    def n_classes(self) -> int:
        return len(self.config.id2label)

    # -- generator ---------------------------------------------------------------------

    def set_generator(self, generator: StyleGAN2Generator) -> None:
        """Use ``generator`` (already loaded) for latents; checks its layers fit the head."""
        shapes = generator.feature_shapes()
        bad = [n for n in self.config.feature_layers
               if n not in shapes or shapes[n][0] != self.config.feature_channels[n]]
        if bad:
            raise ModelFolderError(f"generator does not fit this segmenter: layers {bad} are missing or of other widths "
                                   f"(segmenter expects {self.config.feature_channels})")
        # kept out of _modules so the generator's weights never enter this model's state dict
        self.__dict__["_generator"] = generator.eval()

    @property
    def generator(self) -> StyleGAN2Generator:
        """The generator named in the config, loaded on first use (not part of this model's weights)."""
        if self._generator is None:
            self.set_generator(StyleGAN2Generator.from_pretrained(self.config.generator))
            self._generator.to(self.device)
        return self._generator

    # -- forward -----------------------------------------------------------------------

    def forward(self, features: Mapping[str, torch.Tensor], path: str = "efficient", plan: str = "auto",
                return_dict: bool = True) -> SegmentationOutput:
        """features: layer -> (B, C_l, r_l, r_l) -> logits (B, n_classes, R, R), labels (B, R, R)."""
        feats = select_layers(features, self.config.feature_layers)
        out = self.head(feats, self.config.output_size, self.config.up_mode, self.config.down_mode, path, plan)
        result = SegmentationOutput(labels=out.logits.argmax(1), logits=out.logits,
                                    member_logits=out.member_logits)
        return result if return_dict else result.to_tuple()

    @torch.no_grad()
    def generator_features(self, latents: torch.Tensor, noise: Sequence[torch.Tensor] | None = None):
        """(images, selected features) of the generator at W (B, D) or W+ (B, n_latent, D) latents."""
        g = self.generator
        if latents.shape[-1] != g.style_dim or latents.ndim not in (2, 3):
            raise ValueError(f"latents must be (B, {g.style_dim}) or (B, {g.n_latent}, {g.style_dim}), "
                             f"got {tuple(latents.shape)}")
        out = g([latents], input_is_latent=True, noise=noise, randomize_noise=False, return_features=True)
        return out.images, select_layers(out.features, self.config.feature_layers)

    def segment_images(self, images: torch.Tensor, **optimizer_kwargs) -> SegmentationOutput:
        """Real images (B, 3, H, W) in [-1, 1] at the generator's size: invert, then segment.

        ``optimizer_kwargs`` go to :class:`gan_partseg.inversion.latent_optimizer.LatentOptimizer`
        (space, steps, perceptual, ...). Returns labels, logits and the reconstruction as ``images``;
        the inversion itself is in ``output.inversion``.
        """

        inversion = LatentOptimizer(self.generator, **optimizer_kwargs).invert(images.to(self.device))
        out = self.segment_latents(inversion.latents, inversion.noises)
        out.inversion = inversion
        return out

    @torch.no_grad()
    def segment_latents(self, latents: torch.Tensor, noise: Sequence[torch.Tensor] | None = None,
                        batch_size: int = 16) -> SegmentationOutput:
        """Generate at ``latents`` and segment: labels (B, H, W), logits, images."""
        was_training = self.training
        self.eval()
        parts = []
        for i in range(0, latents.shape[0], batch_size):
            lat = latents[i: i + batch_size].to(self.device)
            nz = None if noise is None else [n[i: i + batch_size] if n.shape[0] > 1 else n for n in noise]
            images, feats = self.generator_features(lat, nz)
            out = self(feats)
            parts.append((out.labels, out.logits, images, out.member_logits))
        self.train(was_training)
        cat = lambda k: torch.cat([p[k] for p in parts]) if parts[0][k] is not None else None  # noqa: E731
        return SegmentationOutput(labels=cat(0), logits=cat(1), images=cat(2), member_logits=cat(3))
