"""The results scripts' caches resume only for the weights that made them (scripts/results_cache.py)."""

import copy
import json

import pytest
import torch

from gan_partseg.results.cache import STAMP, claim_cache


def test_cache_resumes_for_the_same_weights_and_moves_aside_for_others(tiny_generator, tmp_path):
    work = tmp_path / "results"
    said = []
    assert claim_cache(work, say=said.append, generator=tiny_generator) == work
    (work / "rows.jsonl").write_text("row of the first generator\n")
    claim_cache(work, say=said.append, generator=copy.deepcopy(tiny_generator))  # same weights: resumed
    assert (work / "rows.jsonl").exists() and not said

    retrained = copy.deepcopy(tiny_generator)
    with torch.no_grad():
        retrained.input.input.add_(0.5)
    claim_cache(work, say=said.append, generator=retrained)
    assert not (work / "rows.jsonl").exists()  # a fresh cache for the new weights ...
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("results.stale-")]
    assert len(stale) == 1 and (stale[0] / "rows.jsonl").read_text() == "row of the first generator\n"  # ... old kept
    assert "other weights" in said[0] and str(stale[0]) in said[0]
    assert json.loads((work / STAMP).read_text())["generator"] != json.loads((stale[0] / STAMP).read_text())["generator"]


def test_unstamped_cache_with_content_is_refused(tiny_generator, tmp_path):
    work = tmp_path / "old"
    work.mkdir()
    (work / "rows.jsonl").write_text("who made me?\n")
    with pytest.raises(SystemExit, match="no weights.json: nothing says which weights made them"):
        claim_cache(work, generator=tiny_generator)
    assert (work / "rows.jsonl").read_text() == "who made me?\n"
