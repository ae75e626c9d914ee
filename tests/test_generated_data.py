import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gan_partseg.data.generated import load_generated_dataset, shard_path
from gan_partseg.errors import OutputError
from gan_partseg.jobs.generated import make_dataset


def test_dataset_rows_and_uncertainty_filter(segmenter_dir, tmp_path):
    out = make_dataset(segmenter_dir, tmp_path / "ds", n=12, shard_size=5, progress=False)
    ds, info = load_generated_dataset(out)
    assert sorted(ds["seed"]) == list(range(12)) and info["complete"] and info["id2label"]["2"] == "c"
    row = ds[0]
    assert np.asarray(row["image"]).shape == (32, 32, 3) and np.asarray(row["label"]).shape == (32, 32)
    assert np.asarray(row["label"]).max() <= 2 and 0 < row["confidence"] <= 1 and row["disagreement"] >= 0
    kept, _ = load_generated_dataset(out, drop_uncertain=0.25, by="entropy")
    assert len(kept) == 9
    assert max(kept["entropy"]) <= sorted(ds["entropy"])[8] + 1e-7


def test_resume_after_interruption_has_no_duplicate_or_missing_seed(segmenter_dir, tmp_path):
    out = make_dataset(segmenter_dir, tmp_path / "ds", n=12, shard_size=4, progress=False)
    first = shard_path(out, 0, 3)
    stamp = first.stat().st_mtime_ns
    before = {s: r for s, r in zip(*[load_generated_dataset(out)[0][c] for c in ("seed", "entropy")])}
    shard_path(out, 1, 3).unlink()  # an interrupted run: one shard never written ...
    shard_path(out, 2, 3).write_bytes(b"half a parquet file")  # ... and one cut short
    info = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**info, "complete": False}))
    with pytest.raises(ValueError, match="incomplete"):
        load_generated_dataset(out)
    make_dataset(segmenter_dir, out, n=12, shard_size=4, progress=False)
    ds, info = load_generated_dataset(out)
    assert sorted(ds["seed"]) == list(range(12))
    assert first.stat().st_mtime_ns == stamp  # finished shards are never rewritten
    after = dict(zip(ds["seed"], ds["entropy"]))
    assert after == pytest.approx(before)  # regenerated shards hold the same samples


def test_output_folder_of_another_dataset_is_refused(segmenter_dir, tmp_path):
    out = make_dataset(segmenter_dir, tmp_path / "ds", n=4, shard_size=4, progress=False)
    stamp = shard_path(out, 0, 1).stat().st_mtime_ns
    with pytest.raises(OutputError, match="holds another data set"):
        make_dataset(segmenter_dir, out, n=8, shard_size=4, progress=False)
    assert shard_path(out, 0, 1).stat().st_mtime_ns == stamp
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        make_dataset(segmenter_dir, tmp_path / "other", n=4, progress=False)


def test_resume_with_retrained_weights_under_the_same_name_is_refused(segmenter_dir, tmp_path):
    """A generator re-trained and saved under the same folder must not extend a data set its old weights began."""
    from gan_partseg.models.stylegan2 import StyleGAN2Generator

    out = make_dataset(segmenter_dir, tmp_path / "ds", n=8, shard_size=4, progress=False)
    stamp = shard_path(out, 0, 2).stat().st_mtime_ns
    gen_dir = tmp_path / "gen"
    g = StyleGAN2Generator.from_pretrained(gen_dir)
    with torch.no_grad():
        g.input.input.add_(0.1)
    g.save_pretrained(gen_dir)
    with pytest.raises(OutputError, match="holds another data set: weights=.*re-trained under the same name"):
        make_dataset(segmenter_dir, out, n=8, shard_size=4, progress=False)
    assert shard_path(out, 0, 2).stat().st_mtime_ns == stamp


def test_weights_fingerprint_follows_the_weights_not_the_object(tiny_generator):
    import copy

    from gan_partseg.hub import weights_fingerprint

    twin = copy.deepcopy(tiny_generator)
    assert weights_fingerprint(twin) == weights_fingerprint(tiny_generator)
    assert len(weights_fingerprint(tiny_generator)) == 16
    with torch.no_grad():
        next(twin.parameters()).view(-1)[0] += 1e-6
    assert weights_fingerprint(twin) != weights_fingerprint(tiny_generator)
    assert weights_fingerprint(tiny_generator, twin) != weights_fingerprint(twin, tiny_generator)  # order counts


def test_two_processes_cover_each_seed_once(segmenter_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "gan_partseg.cli",
           "make-dataset", "--segmenter", segmenter_dir, "--out", str(tmp_path / "ds"), "--n", "10",
           "--shard-size", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ds, info = load_generated_dataset(tmp_path / "ds")
    assert sorted(ds["seed"]) == list(range(10)) and len(ds) == 10
    single = make_dataset(segmenter_dir, tmp_path / "single", n=10, shard_size=3, progress=False)
    ref = load_generated_dataset(single)[0]
    assert dict(zip(ref["seed"], ref["entropy"])) == pytest.approx(dict(zip(ds["seed"], ds["entropy"])))


def test_logits_smaller_than_the_generator_give_pairs_of_one_size_and_the_batch_fits_its_budget(tiny_generator, tmp_path):
    """The paper's setting (1024 px generator, 512 px logits): images are stored at the logits' size, so the U-Net
    trains on aligned pairs; the default batch follows the activations' size."""
    from gan_partseg.data.labelled import load_training_set
    from gan_partseg.jobs.generated import auto_batch_size
    from gan_partseg.models.fewshot import FewShotSegmenter, FewShotSegmenterConfig
    from gan_partseg.models.heads import parse_head

    tiny_generator.save_pretrained(tmp_path / "gen")
    torch.manual_seed(0)
    seg = FewShotSegmenter(FewShotSegmenterConfig.for_generator(tiny_generator, str(tmp_path / "gen"),
                                                                {0: "a", 1: "b"}, output_size=16))
    seg.save_pretrained(tmp_path / "seg")
    out = make_dataset(str(tmp_path / "seg"), tmp_path / "ds", n=3, shard_size=3, progress=False)
    images, labels, _, _ = load_training_set(out)  # what train-autoshot reads: refused if the sizes differ
    assert images.shape[-2:] == labels.shape[-2:] == (16, 16)
    # a set begun before images were stored at the output size is not resumed into a mix of sizes
    info = json.loads((out / "dataset.json").read_text())
    del info["images_at_output_size"]
    (out / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(OutputError, match="older make-dataset that stored 32 px images"):
        make_dataset(str(tmp_path / "seg"), out, n=3, shard_size=3, progress=False)
    seg.set_generator(tiny_generator)
    features_only = 4 * sum(c * r * r for c, r in tiny_generator.feature_shapes().values())  # a lower bound per image
    budget = 2**21
    assert 1 < auto_batch_size(seg, budget=budget) < budget // features_only and auto_batch_size(seg, budget=1) == 1
    assert auto_batch_size(seg) == 16  # small models: the cap
    # an ensemble holds ten members' maps at the output size: fewer images fit the same budget
    ens = FewShotSegmenter(FewShotSegmenterConfig.for_generator(tiny_generator, "tiny", {0: "a", 1: "b"},
                                                                output_size=16, **parse_head("ensemble-10")))
    ens.set_generator(tiny_generator)
    assert auto_batch_size(ens, budget=budget) < auto_batch_size(seg, budget=budget)
