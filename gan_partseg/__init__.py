"""gan_partseg: one-shot semantic part segmentation by repurposing a pretrained StyleGAN2.

Stages (each a transformers ``PreTrainedModel`` with ``from_pretrained`` / ``save_pretrained``):

1. :class:`StyleGAN2Generator` - images and every synthesis layer's activations.
2. :class:`FewShotSegmenter` - a CNN / MLP head on those activations, trained on k shots;
   real images reach it through :class:`LatentOptimizer` (GAN inversion).
3. :class:`AutoShotSegmenter` - a U-Net trained on generated (image, label) pairs; takes images directly.

Importing the package registers the configs and models with ``AutoConfig`` /
``AutoModel``, so ``AutoModel.from_pretrained(folder)`` works, and lets those take the bundled
artifact names too (``AutoModel.from_pretrained("toyfaces-64")``, offline).
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForSemanticSegmentation
from transformers.models.auto import modeling_auto

from gan_partseg.evaluation.metrics import SegmentationMetrics, evaluate_arrays
from gan_partseg.hub import bundled_artifacts, resolve_bundled_names, resolve_bundled_pipeline_names, resolve_pretrained
from gan_partseg.inversion.latent_optimizer import InversionResult, LatentOptimizer
from gan_partseg.labels import CLASSES_3, CLASSES_10
from gan_partseg.models.autoshot import AutoShotSegmenter, AutoShotSegmenterConfig, OutOfDistributionWarning
from gan_partseg.models.fewshot import FewShotSegmenter, FewShotSegmenterConfig, SegmentationOutput
from gan_partseg.models.processing import AutoShotImageProcessor
from gan_partseg.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
    StyleGAN2Output,
)

try:
    from importlib.metadata import version as _version

    __version__ = _version("gan_partseg")
except Exception:  # noqa: BLE001 -- a source tree that is not installed
    __version__ = "0+unknown"

AutoConfig.register(StyleGAN2Config.model_type, StyleGAN2Config, exist_ok=True)
AutoConfig.register(StyleGAN2DiscriminatorConfig.model_type, StyleGAN2DiscriminatorConfig, exist_ok=True)
AutoModel.register(StyleGAN2Config, StyleGAN2Generator, exist_ok=True)
AutoModel.register(StyleGAN2DiscriminatorConfig, StyleGAN2Discriminator, exist_ok=True)
AutoConfig.register(FewShotSegmenterConfig.model_type, FewShotSegmenterConfig, exist_ok=True)
AutoModel.register(FewShotSegmenterConfig, FewShotSegmenter, exist_ok=True)
AutoConfig.register(AutoShotSegmenterConfig.model_type, AutoShotSegmenterConfig, exist_ok=True)
AutoModel.register(AutoShotSegmenterConfig, AutoShotSegmenter, exist_ok=True)
AutoModelForSemanticSegmentation.register(AutoShotSegmenterConfig, AutoShotSegmenter, exist_ok=True)
AutoImageProcessor.register(AutoShotSegmenterConfig, image_processor_classes={"pil": AutoShotImageProcessor},
                            exist_ok=True)
for _auto in (AutoConfig, AutoModel, AutoModelForSemanticSegmentation, AutoImageProcessor):
    resolve_bundled_names(_auto)
resolve_bundled_pipeline_names()  # pipeline("image-segmentation", model="toyfaces-64-autoshot-10c"), offline
# the image-segmentation pipeline checks this table by name (it logs an error for models not in it)
modeling_auto.MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES.setdefault(AutoShotSegmenterConfig.model_type,
                                                                       "AutoShotSegmenter")

__all__ = [
    "AutoShotImageProcessor",
    "AutoShotSegmenter",
    "AutoShotSegmenterConfig",
    "CLASSES_10",
    "CLASSES_3",
    "FewShotSegmenter",
    "FewShotSegmenterConfig",
    "InversionResult",
    "OutOfDistributionWarning",
    "LatentOptimizer",
    "SegmentationMetrics",
    "SegmentationOutput",
    "evaluate_arrays",
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "StyleGAN2DiscriminatorConfig",
    "StyleGAN2Generator",
    "StyleGAN2Output",
    "bundled_artifacts",
    "resolve_pretrained",
]
