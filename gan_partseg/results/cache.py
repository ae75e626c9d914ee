"""Result caches that know which weights made them.

The results scripts cache inversions, rows and trained models under runs/ so an interrupted run
resumes. A cache is only valid for the weights that made it: after the embedded generator is
re-trained and re-shipped under the same name, resuming would mix old latents and rows into new
tables. ``claim_cache`` stamps a cache folder with the weights fingerprints of the models it
depends on and, when they changed, moves the stale folder aside (never deletes it) so the run
starts fresh.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from gan_partseg.files import atomic_write_text
from gan_partseg.hub import weights_fingerprint

STAMP = "weights.json"
ROOT = Path(__file__).resolve().parents[2]  # the checkout: results are written into its docs/ and runs/
REPRODUCE = ROOT / "reproduce"
"""Tracked: what a later session needs to resume the embedded GAN and rebuild results (its README says what)."""


def claim_cache(work: Path, say=print, **models) -> Path:
    """Make ``work`` a cache of results of ``models`` (role=model); returns ``work``.

    New or empty folder: stamped. Same fingerprints: resumed. Other fingerprints: renamed to
    ``<work>.stale-<old fingerprint>-<time>`` and started fresh. A non-empty folder without a stamp
    (made before stamps existed, or by hand) is refused: nothing says which weights made it.
    """
    work = Path(work)
    stamp = {role: weights_fingerprint(m) for role, m in sorted(models.items())}
    path = work / STAMP
    if path.exists():
        old = json.loads(path.read_text())
        if old == stamp:
            return work
        tag = "-".join(old.values())[:33]
        aside = work.with_name(f"{work.name}.stale-{tag}-{time.strftime('%Y%m%d%H%M%S')}")
        work.rename(aside)
        changed = ", ".join(f"{r} {old.get(r)} -> {stamp[r]}" for r in stamp if old.get(r) != stamp[r])
        say(f"{work} was computed with other weights ({changed}); moved it to {aside} and starting afresh")
    elif work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} holds results but no {STAMP}: nothing says which weights made them. "
                         f"Move it aside (or delete it) and rerun, or write {path} if you know it is current: "
                         f"{json.dumps(stamp)}")
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(stamp, indent=2))
    return work
