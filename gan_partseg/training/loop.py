"""The one Accelerate training-loop shape the segmenters share.

``fit`` runs ``steps`` optimisation steps of a ``loss_fn(step) -> loss`` closure
with a progress bar showing the loss, optional scheduler, JSONL log and a
per-step callback (checkpoints, validation). The caller prepares model and
optimizer with the accelerator and seeds each step (``common.step_generator``),
so a run is deterministic and resumable from any step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from gan_partseg.training.checkpoints import JsonlLog


def fit(
    accelerator,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[int], torch.Tensor],
    steps: int,
    start_step: int = 0,
    scheduler=None,
    desc: str = "train",
    progress: bool = True,
    log: JsonlLog | None = None,
    log_every: int = 10,
    on_step: Callable[[int], None] | None = None,
) -> list[float]:
    """Run steps ``start_step .. steps-1``; returns the loss of each step run."""
    losses: list[float] = []
    t0 = time.time()
    bar = tqdm(total=steps, initial=start_step, desc=desc, disable=not (progress and accelerator.is_main_process))
    for step in range(start_step, steps):
        loss = loss_fn(step)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value = float(loss.detach())
        losses.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
        if log is not None and accelerator.is_main_process and ((step + 1) % log_every == 0 or step + 1 == steps):
            log.write({"step": step + 1, "loss": value, "sec": round(time.time() - t0, 2)})
        if on_step is not None:
            on_step(step + 1)
    bar.close()
    return losses
