"""Every benchmark records the machine, threads and commit beside its rows (benchmarks/common.py)."""

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_results_carry_the_environment_in_json_and_under_the_markdown_title(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common
    finally:
        sys.path.remove(str(BENCHMARKS))
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    env = common.write_results("demo", [{"row": "a", "s": 1.0}], "# A benchmark\n\n| row | s |\n|---|---|\n| a | 1.0 |\n")
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["rows"] == [{"row": "a", "s": 1.0}] and data["environment"] == env
    assert env["cpu_cores"] >= 1 and env["torch_threads"] >= 1 and env["commit"]
    lines = (tmp_path / "demo.md").read_text().splitlines()
    assert lines[0] == "# A benchmark" and lines[2].startswith("Measured ") and f"commit `{env['commit']}`" in lines[2]
    assert "| a | 1.0 |" in lines


def test_every_benchmark_writes_through_the_common_writer():
    scripts = [p for p in BENCHMARKS.glob("*.py") if p.name != "common.py"]
    assert len(scripts) >= 8 and (BENCHMARKS / "import_memory.py").exists()
    for p in scripts:
        text = p.read_text()
        assert "write_results(" in text and ".write_text(" not in text, p.name


def test_import_memory_fixture_is_the_released_layout_and_its_baseline_writes_the_same_data(tmp_path, monkeypatch):
    """benchmarks/import_memory.py: its synthetic CelebAMask-HQ folder imports, and its private copy of the old
    list writer (the baseline it measures against) gives the data set the streaming writer gives."""
    import numpy as np

    import gan_partseg.data.celebamask as celebamask
    from gan_partseg.data.export import load_hf_dataset

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import import_memory
    finally:
        sys.path.remove(str(BENCHMARKS))
    root = import_memory.build_fixture(tmp_path / "CelebAMask-HQ", 3, source_size=32, templates=2)
    assert celebamask.list_faces(root) == [0, 1, 2] and celebamask.split_faces(root, "train") == [0, 1, 2]
    assert (root / "CelebAMask-HQ-mask-anno" / "0" / "00002_skin.png").is_file()
    celebamask.import_celebamask(root, tmp_path / "new", size=16, progress=False)
    monkeypatch.setattr(celebamask, "save_labelled_dataset", import_memory._list_save_labelled_dataset)
    celebamask.import_celebamask(root, tmp_path / "old", size=16, progress=False)
    (new, labels), (old, old_labels) = load_hf_dataset(tmp_path / "new"), load_hf_dataset(tmp_path / "old")
    assert labels == old_labels and new.features == old.features and new.info.description == old.info.description
    for a, b in zip(new, old, strict=True):
        assert a["seed"] == b["seed"] and np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
        assert np.array_equal(np.asarray(a["label"]), np.asarray(b["label"]))
    assert len(np.unique(np.asarray(new[0]["label"]))) > 5  # the fixture's masks make a real label map
