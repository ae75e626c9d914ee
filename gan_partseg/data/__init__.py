"""The embedded world: procedural toy faces with exact part masks."""

from gan_partseg.data.toyfaces import HELD_OUT_SEEDS, TRAIN_SEEDS, render, render_batch

__all__ = ["HELD_OUT_SEEDS", "TRAIN_SEEDS", "render", "render_batch"]
