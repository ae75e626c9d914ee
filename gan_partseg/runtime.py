"""Processes and randomness: the accelerator for one or several processes, step-seeded RNG, replica checks."""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys

import torch

KEEP_MEMORY_ENV = "GAN_PARTSEG_KEEP_MEMORY"  # "0" turns keep_freed_memory() off


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (run seed, step, process index, ...)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def step_generator(*parts: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(*parts))
    return g


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the system; True when applied.

    Why: PyTorch on the CPU allocates every activation afresh. glibc serves blocks above its mmap
    threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps them on free, so each large tensor pays a
    page fault per 4 KiB page, zero-filled by the kernel, on every forward. At 256 px config-f this made
    a batch of 4 slower per image than a batch of 1 (``benchmarks/generator.py``). Serving every block
    from the heap, and trimming its top only past 2 GiB free, is what PyTorch's CUDA caching allocator does
    on the GPU: later forwards reuse the blocks. The cost: freed blocks are not returned between layers, so
    the peak is higher (at 256 px, batch 4: 1.3 GiB against 0.76; ``docs/results.md``). Applies to the
    whole process, only on Linux with glibc; ``GAN_PARTSEG_KEEP_MEMORY=0`` leaves malloc alone. Call it once,
    early: the CLI does; scripts that import the package may.
    """
    if os.environ.get(KEEP_MEMORY_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded; musl and others have no mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    if not mallopt(m_trim_threshold, 2**31 - 1):
        return False
    return bool(mallopt(m_mmap_max, 0))  # False: trimming alone is off, which changes nothing measurable


def world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``, set by torchrun and ``accelerate launch``); 1 alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_launch_main() -> bool:
    """Whether this is the first (or only) launched process: the one that prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def make_accelerator(**kwargs):
    """``accelerate.Accelerator(**kwargs)`` that also spreads over several processes of one CPU machine.

    Under ``torchrun --nproc_per_node N`` on a machine without a GPU, accelerate joins the processes into
    one (gloo) group only when told ``cpu=True``; without it each process would train alone, on the same
    run folder. So here ``cpu=True`` is set for a multi-process launch without CUDA, and a launch whose
    processes did not join up is an error. (``accelerate launch --num_processes N`` without a GPU starts a
    single process: its multi-CPU mode needs MPI. On one CPU machine use torchrun.)
    """
    from accelerate import Accelerator

    n = world_size()
    if n > 1 and not torch.cuda.is_available():
        kwargs.setdefault("cpu", True)
    accelerator = Accelerator(**kwargs)
    if accelerator.num_processes != n:
        raise RuntimeError(f"{n} processes were launched but accelerate joined {accelerator.num_processes} "
                           f"({accelerator.distributed_type}); launch with torchrun --nproc_per_node {n}, or "
                           "accelerate launch with a config for this machine (accelerate config)")
    return accelerator


def any_process(accelerator, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (e.g. a time limit each process reads off its own
    clock): processes that decided apart would stop apart and wait on each other for ever."""
    if accelerator.num_processes == 1:
        return bool(flag)
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), "sum").item() > 0)


def check_replicas_agree(accelerator, modules: dict[str, torch.nn.Module]) -> None:
    """Under several processes, raise unless every process holds the same weights in each of ``modules``
    (one checksum per module gathered: cheap enough for every checkpoint). Data-parallel training keeps
    them equal; a difference means gradients were not shared and the run would checkpoint rank 0 alone."""
    if accelerator.num_processes == 1:
        return
    sums = torch.stack([sum((p.detach().double().sum() for p in m.parameters()), torch.zeros((), dtype=torch.float64))
                        for m in modules.values()]).to(accelerator.device)
    gathered = accelerator.gather(sums[None]).cpu()
    differ = [name for i, name in enumerate(modules) if not bool((gathered[:, i] == gathered[0, i]).all())]
    if differ:
        raise RuntimeError(f"the {accelerator.num_processes} processes hold different {', '.join(differ)} weights: "
                           "the data-parallel gradient exchange failed; the last complete checkpoint is intact")
