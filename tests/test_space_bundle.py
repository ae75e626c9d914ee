"""The Space folder builds as Hugging Face would build it: a fresh venv from its requirements.txt alone."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))
import bundle  # noqa: E402


@pytest.mark.e2e
def test_the_space_bundle_installs_in_a_fresh_venv_and_builds_the_app(tmp_path):
    out = tmp_path / "space"
    wheel = bundle.build(out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*bundle.FILES, wheel.name])
    with zipfile.ZipFile(wheel) as z:  # the wheel carries the bundled models the app loads
        names = set(z.namelist())
    for model in ("toyfaces-64", "toyfaces-64-fewshot-10c-10shot", "toyfaces-64-autoshot-10c"):
        assert f"gan_partseg/artifacts/{model}/model.safetensors" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
                         cwd=out, env=env, capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    probe = ("import gan_partseg, app; demo = app.build_demo(); "
             "print(type(demo).__name__, gan_partseg.__file__)")
    run = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=out, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    kind, location = run.stdout.split()[-2:]
    assert kind == "Blocks"
    assert Path(location).is_relative_to(venv)  # the installed wheel, not the checkout


def test_the_bundle_refuses_a_requirements_file_that_does_not_name_the_built_wheel(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("gradio==6.31.0\ngan_partseg[demo] @ git+https://example.invalid/x.git\n")
    with pytest.raises(SystemExit, match="one ./gan_partseg-\\*.whl line"):
        bundle.wheel_line(req)
    version = next(ln.split('"')[1] for ln in (bundle.ROOT / "pyproject.toml").read_text().splitlines()
                   if ln.startswith("version"))
    assert bundle.wheel_line(bundle.HERE / "requirements.txt") == f"./gan_partseg-{version}-py3-none-any.whl[demo]"
