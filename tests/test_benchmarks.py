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
    assert len(scripts) >= 6
    for p in scripts:
        text = p.read_text()
        assert "write_results(" in text and ".write_text(" not in text, p.name
