"""Image processor of the auto-shot U-Net (transformers PIL backend).

Resizes to the model's training size (bilinear), rescales to [0, 1] and normalises
with mean 0.5 / std 0.5, i.e. the [-1, 1] range the GAN draws in. Post-processing
upsamples logits to each image's size and takes the argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling


class AutoShotImageProcessor(PilBackend):
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"height": 64, "width": 64}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def post_process_semantic_segmentation(self, outputs, target_sizes=None) -> list[torch.Tensor]:
        """outputs.logits (B, C, h, w) -> list of (H, W) int64 label maps (at ``target_sizes`` when given)."""
        logits = outputs.logits if hasattr(outputs, "logits") else outputs["logits"]
        if target_sizes is not None and len(target_sizes) != logits.shape[0]:
            raise ValueError(f"target_sizes has {len(target_sizes)} entries for {logits.shape[0]} images")
        results = []
        for i in range(logits.shape[0]):
            lg = logits[i: i + 1]
            if target_sizes is not None and tuple(int(s) for s in target_sizes[i]) != tuple(lg.shape[-2:]):
                lg = F.interpolate(lg.float(), size=tuple(int(s) for s in target_sizes[i]), mode="bilinear",
                                   align_corners=False)
            results.append(lg.argmax(1)[0].cpu())
        return results
