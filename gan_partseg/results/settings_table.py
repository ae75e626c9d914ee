"""The table both settings comparisons print (few-shot head, auto-shot U-Net): one row per setting with
validation mean / weighted / per-class IoU and the classes it misses, then the best change."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gan_partseg.labels import misses_text


def setting_label(change: dict, base_label: str) -> str:
    return ", ".join(f"{a} {b}" for a, b in change.items()) or base_label


def setting_lines(rows: list[dict], classes: Sequence[str], base_label: str, extra: Callable[[dict], str]) -> list[str]:
    """``| setting | mean | weighted | classes... | misses | extra |`` per row (IoU x 100; ``extra`` gives the
    last cells, e.g. "13.0" or "5 | 4.2")."""
    lines = []
    for r in rows:
        pc = r["val_per_class_iou"]
        lines.append(f"| {setting_label(r['change'], base_label)} | {100 * r['val_mean_iou']:.1f} | "
                     f"{100 * r['val_weighted_iou']:.1f} | " + " | ".join(f"{100 * pc[c]:.1f}" for c in classes)
                     + f" | {misses_text(pc).removeprefix('misses: ') or 'none'} | {extra(r)} |")
    return lines


def best_line(rows: list[dict], base_name: str, note: str = "") -> str:
    """'Best: CHANGE, +X.X mean IoU over BASE_NAME.' (the row without a change is the base)."""
    base = next(r for r in rows if not r["change"])
    best = max(rows, key=lambda r: r["val_mean_iou"])
    gap = 100 * (best["val_mean_iou"] - base["val_mean_iou"])
    return f"Best: {setting_label(best['change'], 'the ' + base_name)}, {gap:+.1f} mean IoU over the {base_name}{note}."
