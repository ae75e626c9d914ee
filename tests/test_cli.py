import json
import subprocess
import sys

import pytest

from gan_partseg.cli import build_parser, main

COMMANDS = ["convert", "train-gan", "export-data", "grid", "fd", "fid", "demo", "artifacts", "sample", "train-fewshot",
            "invert", "make-shots", "evaluate-fewshot", "make-dataset", "train-autoshot", "import-data", "evaluate",
            "push"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: gan-partseg " + command in capsys.readouterr().out


def test_console_script_runs():
    res = subprocess.run([sys.executable, "-m", "gan_partseg.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "train-gan" in res.stdout


def test_export_data_cli_writes_pngs(tmp_path, capsys):
    assert main(["export-data", "--out", str(tmp_path / "d"), "--n", "2", "--format", "png", "--size", "32"]) == 0
    assert len(list((tmp_path / "d" / "images").glob("*.png"))) == 2
    assert json.loads((tmp_path / "d" / "id2label.json").read_text())["9"] == "clothes"


def test_bad_seed_spec_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["export-data", "--out", str(tmp_path / "d"), "--seeds", "x:y"]) == 2
    assert "START:STOP" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_unknown_generator_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["grid", "--generator", "nope", "--out", str(tmp_path / "g.png")]) == 2
    assert "Bundled artifacts" in capsys.readouterr().err


@pytest.mark.e2e
def test_demo_runs_the_whole_pipeline_on_bundled_weights(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path / "demo"), "--n", "8", "--n-test", "24", "--n-invert", "2",
            "--invert-steps", "30"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("samples.png", "feature_pca.png", "fewshot_generated.png", "autoshot_heldout.png",
                 "inversion_heldout.png", "metrics.md", "summary.json"):
        assert (tmp_path / "demo" / name).exists() and name in out
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["autoshot_heldout"]["n_images"] == 24 and summary["inversion_heldout"]["n_images"] == 2
    assert summary["autoshot_heldout"]["weighted_iou"] > 0.6  # the shipped U-Net segments held-out faces
    metrics = (tmp_path / "demo" / "metrics.md").read_text()
    assert "| auto-shot" in metrics and "| mean IoU | weighted IoU | background |" in metrics
    assert "misses (IoU < 20)" in metrics
    for stage in range(1, 6):  # every stage says what it does
        assert f"demo {stage}/5:" in out
    from gan_partseg.labels import misses_text

    for key in ("autoshot_heldout", "inversion_heldout"):  # the last lines: mean, weighted, per class, misses
        r = summary[key]
        assert f"mean IoU {100 * r['mean_iou']:.1f} (weighted {100 * r['weighted_iou']:.1f})" in out
        assert (misses_text(r["per_class_iou"]) or "every class scores IoU 20 or more") in out
    assert "per class: background" in out


def test_version_and_help_without_none_defaults_or_repeated_defaults(capsys):
    import gan_partseg

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"gan-partseg {gan_partseg.__version__}"
    for command in ("train-fewshot", "train-autoshot", "train-gan", "make-dataset"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "default: None" not in text and text.count("(default: mlp-1)") <= 1


def test_counts_take_the_right_number():
    from gan_partseg.labels import counted

    assert counted(1, "shot") == "1 shot" and counted(5, "shot") == "5 shots" and counted(0, "shot") == "0 shots"
