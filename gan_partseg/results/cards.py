"""Regenerate the model card of every bundled artifact from the measured results.

    python scripts/make_cards.py

Reads docs/results/toyfaces-64.json (+ the run log), docs/results/fewshot.json and
docs/results/autoshot.json, and writes each artifact's README.md and its copy in model_cards/, and the
generator's loss log summary docs/results/toyfaces-64-training.md.
The ship / results scripts call this at their end; run it alone after editing gan_partseg/cards.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from gan_partseg import StyleGAN2Discriminator, StyleGAN2Generator
from gan_partseg.cards import EMBEDDED_STORY, autoshot_card, fewshot_card, generator_card
from gan_partseg.files import atomic_write_text
from gan_partseg.hub import bundled_artifacts
from gan_partseg.results.cache import REPRODUCE, ROOT
from gan_partseg.training.gan import training_summary

RESULTS = ROOT / "docs" / "results"
CARDS = ROOT / "model_cards"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def write_cards(verbose: bool = True) -> list[str]:
    written = []
    artifacts = bundled_artifacts()
    fewshot, autoshot = _load("fewshot.json"), _load("autoshot.json")
    for name, folder in artifacts.items():
        config = json.loads((folder / "config.json").read_text())
        if name == "toyfaces-64":
            shipped_config = json.loads((folder / "train_config.json").read_text())
            run = ROOT / shipped_config.get("out", f"runs/{name}")  # the run it was shipped from (maybe a fork)
            if not (run / "log.jsonl").exists():  # a fresh clone: the tracked copy of its config and log
                run = REPRODUCE / run.name
            quality = _load(f"{name}.json")
            yardsticks = _load("fd-sensitivity.json")
            if quality and yardsticks and yardsticks["n_images"] == quality["n_images"]:
                for key, out in (("fd_lite0", "fd_yardsticks"), ("fd_detector", "fd_detector_yardsticks")):
                    if key in yardsticks:
                        quality[out] = {k: v for k, v in yardsticks[key].items() if k != "rendered (floor)"}
            info, table = training_summary(run, upto_step=quality.get("step") if quality else None)
            atomic_write_text(RESULTS / f"{name}-training.md",
                              f"# {name} training log summary\n\nFrom `{run.name}/log.jsonl` and the runs it "
                              f"descends from ({info['steps_done']} steps, {info['wall_minutes']:.0f} min wall)."
                              f"\n\n{table}\n")
            training = {**shipped_config, **info}

            g = StyleGAN2Generator.from_pretrained(name)
            d = StyleGAN2Discriminator.from_pretrained(name, subfolder="discriminator")
            training["g_params_m"] = round(sum(p.numel() for p in g.parameters()) / 1e6, 2)
            training["d_params_m"] = round(sum(p.numel() for p in d.parameters()) / 1e6, 2)
            parts = (folder / "parts.png").exists()
            generator_card(name, config, training, quality, "samples.png",
                           "parts.png" if parts else None, story=EMBEDDED_STORY).save(folder / "README.md")
            generator_card(name, config, training, quality, f"{name}-samples.png",
                           f"{name}-parts.png" if parts else None, story=EMBEDDED_STORY).save(CARDS / f"{name}.md")
        elif "-fewshot-" in name:
            training = json.loads((folder / "training.json").read_text()) if (folder / "training.json").exists() else None
            results = None
            if fewshot and training:
                row = next((r for r in fewshot["summary"] if r["classes"] == len(config["id2label"])
                            and r["head"] == training["config"]["head"] and r["k"] == training["k"]), None)
                results = {"summary_row": row, "meta": fewshot["meta"]} if row else None
            card = fewshot_card(name, config, training, results)
            own = (fewshot or {}).get("meta", {}).get("shipped", {}) or {}
            own = own.get(str(training["k"])) if training else None
            if own and own.get("head") == training["config"]["head"]:
                _write_evaluation(folder, own, f"HELD_OUT_SEEDS[:{fewshot['meta']['n_test']}] through inversion")
            card.save(folder / "README.md")
            card.save(CARDS / f"{name}.md")
        elif "-autoshot-" in name:
            card = autoshot_card(name, autoshot, config=config)
            if autoshot and "autoshot" in autoshot.get("rows", {}):
                _write_evaluation(folder, autoshot["rows"]["autoshot"], autoshot["meta"]["test"])
            card.save(folder / "README.md")
            card.save(CARDS / f"{name}.md")
        else:
            continue
        written.append(name)
        if verbose:
            print(f"wrote the card of {name}")
    return written


EVALUATION = "evaluation.json"
"""Beside a bundled segmenter: its own held-out figures (mean, weighted, per class), read by the Space."""


def _write_evaluation(folder: Path, result: dict, test: str) -> None:
    atomic_write_text(folder / EVALUATION, json.dumps(
        {"test": test, "mean_iou": result["mean_iou"], "weighted_iou": result["weighted_iou"],
         "per_class_iou": result["per_class_iou"]}, indent=2))


if __name__ == "__main__":
    write_cards()
