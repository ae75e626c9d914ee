"""The Gradio Space: handlers called directly, then the app on loopback driven by gradio_client."""

import socket
import sys
import zipfile
from pathlib import Path

import gradio as gr  # noqa: E402  (the dev extra installs the demo extra)
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))
import app  # noqa: E402

from gan_partseg import FewShotSegmenter
from gan_partseg.data.shots import read_shots
from gan_partseg.labels import CLASSES_10, palette_for

PALETTE = palette_for(len(CLASSES_10))


def paint(layer, cls, box, edge=False):
    """Paint a box in the class colour; with ``edge`` its border is blended half-way to white (antialiasing)."""
    y0, y1, x0, x1 = box
    layer[y0:y1, x0:x1, :3] = PALETTE[cls]
    layer[y0:y1, x0:x1, 3] = 255
    if edge:
        blend = (PALETTE[cls].astype(int) * 3 + 255) // 4
        layer[y0, x0:x1, :3] = blend
        layer[y0, x0:x1, 3] = 160


def test_strokes_map_to_the_nearest_palette_colour_and_block_majority():
    layer = np.zeros((256, 256, 4), np.uint8)
    paint(layer, CLASSES_10.index("eye"), (40, 56, 40, 80), edge=True)
    paint(layer, CLASSES_10.index("mouth"), (160, 172, 100, 156))
    labels = app.strokes_to_labels(layer)
    assert labels.shape == (64, 64)
    assert (labels[10:14, 10:20] == CLASSES_10.index("eye")).all()
    assert (labels[40:43, 25:39] == CLASSES_10.index("mouth")).all()
    assert set(np.unique(labels)) == {0, CLASSES_10.index("eye"), CLASSES_10.index("mouth")}


@pytest.mark.e2e
def test_generate_returns_pictures():
    image, over, legend = app.generate(7, 0.8, "10 classes")
    assert image.shape == (256, 256, 3) and over.shape == (256, 256, 3) and legend.shape[-1] == 3
    _, over3, _ = app.generate(7, 0.8, "3 classes (eye, mouth, nose)")
    assert not np.array_equal(over, over3)
    with pytest.raises(gr.Error, match="seed must be"):
        app.generate(-1, 0.8, "10 classes")


@pytest.mark.e2e
def test_annotate_train_download_round_trip(tmp_path):
    state = app.new_session()
    with pytest.raises(gr.Error, match="Draw a face first"):
        app.add_shot(None, state)
    for seed in (11, 12):
        editor, state, _ = app.new_sample(seed, state)
        assert editor["background"].shape == (256, 256, 3)
        with pytest.raises(gr.Error, match="annotation is empty"):
            app.add_shot(editor, state)
        layer = editor["layers"][0].copy()
        paint(layer, CLASSES_10.index("skin"), (80, 200, 70, 190))
        paint(layer, CLASSES_10.index("eye"), (120, 132, 96, 116), edge=True)
        paint(layer, CLASSES_10.index("eye"), (120, 132, 140, 160))
        state, status, gallery = app.add_shot({**editor, "layers": [layer]}, state)
        assert "skin" in status and "eye" in status
    assert len(state["shots"]) == 2 and len(gallery) == 2
    with pytest.raises(gr.Error, match="between 10 and"):
        app.train_head("cnn-s", 5000, state)
    state["training"] = True  # a second click while the first run trains
    with pytest.raises(gr.Error, match="already running"):
        app.train_head("cnn-s", 20, state)
    state["training"] = False
    state, status, preview = app.train_head("cnn-s", 30, state)
    assert "Trained cnn-s on 2 shots" in status and "never predicted: hair" in status  # classes with no strokes
    assert preview.shape == (4 * 256, 512, 3) and not state["training"]

    with zipfile.ZipFile(app.download_head(state)) as z:
        z.extractall(tmp_path / "head")
    model = FewShotSegmenter.from_pretrained(tmp_path / "head" / "my-fewshot-segmenter")
    assert model.n_classes == 10 and (tmp_path / "head" / "my-fewshot-segmenter" / "README.md").exists()
    with zipfile.ZipFile(app.download_shots(state)) as z:
        z.extractall(tmp_path / "shots")
    shots, labels = read_shots(tmp_path / "shots")
    assert len(shots) == 2 and labels[3] == "eye" and str(tmp_path) not in status


@pytest.mark.e2e
def test_your_image_tab_and_bad_uploads(tmp_path):
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 80, 3), dtype=np.uint8)).convert("RGBA").save(face)
    over, areas, inversion, status = app.segment_upload(str(face), False, 100)
    assert over.shape == (256, 256, 3) and inversion is None and all(a[1].endswith("%") for a in areas)
    assert "looks nothing like the toy faces" in status  # noise: the U-Net's out-of-distribution warning
    from gan_partseg.data import HELD_OUT_SEEDS, render

    Image.fromarray(render(HELD_OUT_SEEDS[0], 64)[0]).save(tmp_path / "toyface.png")
    assert app.segment_upload(str(tmp_path / "toyface.png"), False, 100)[3] == "Auto-shot U-Net: one forward pass."
    _, _, inversion, status = app.segment_upload(str(face), True, 20)
    assert inversion.shape == (256, 512, 3) and "PSNR" in status
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(gr.Error, match="not an image this demo can read"):
        app.segment_upload(str(tmp_path / "notes.txt"), False, 100)
    Image.new("1", (8000, 6300)).save(tmp_path / "huge.png")  # 50 megapixels, a few kB on disk
    with pytest.raises(gr.Error, match="50 megapixels"):
        app.segment_upload(str(tmp_path / "huge.png"), False, 100)
    with pytest.raises(gr.Error, match="Upload an image first"):
        app.segment_upload(None, False, 100)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_app_on_loopback_with_gradio_client(tmp_path):
    from gradio_client import Client, handle_file

    port = _free_port()
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                max_file_size=app.MAX_UPLOAD)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        image, over, legend = client.predict(7, 0.8, "10 classes", api_name="/generate")
        assert np.asarray(Image.open(over)).shape[:2] == (256, 256)
        (tmp_path / "x.txt").write_text("hello")
        with pytest.raises(Exception, match="not an image"):
            client.predict(handle_file(str(tmp_path / "x.txt")), False, 100, api_name="/segment")
        # the app is still up after the error, and the queue serves several users at once
        jobs = [Client(f"http://127.0.0.1:{port}/", verbose=False).submit(s, 0.8, "10 classes", api_name="/generate")
                for s in (8, 9, 10)]
        results = [j.result(timeout=120) for j in jobs]
        assert all(Path(r[0]).exists() for r in results)
        assert not np.array_equal(np.asarray(Image.open(results[0][0])), np.asarray(Image.open(results[1][0])))
    finally:
        demo.close()


def test_space_front_matter_names_the_app_and_the_tested_gradio():
    """spaces_app/README.md is what Hugging Face reads to build the Space: sdk, pinned Gradio, app file."""
    import gradio
    import yaml

    folder = Path(__file__).resolve().parents[1] / "spaces_app"
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == gradio.__version__
    assert (folder / meta["app_file"]).is_file()
    assert str(meta["python_version"]).startswith("3.")
    pinned = [ln for ln in (folder / "requirements.txt").read_text().splitlines() if ln.startswith("gradio")]
    assert pinned == [f"gradio=={gradio.__version__}"]


def test_the_space_shows_each_bundled_models_per_part_figures_and_names_what_it_misses():
    text = app.quality_markdown()
    assert "| model | mean IoU | weighted IoU | background |" in text and "eyebrow" in text
    for name in (app.FEWSHOT, app.AUTOSHOT):
        assert f"| {name} |" in text
    import json

    from gan_partseg.hub import resolve_pretrained
    auto = json.loads((Path(resolve_pretrained(app.AUTOSHOT)) / "evaluation.json").read_text())
    from gan_partseg.labels import misses_text

    misses = misses_text(auto["per_class_iou"])
    assert (f"{app.AUTOSHOT} {misses}" in text) if misses else "Every model finds every part" in text


def test_an_ordinary_user_error_is_logged_as_one_line_and_a_fault_with_its_traceback(tmp_path, caplog):
    import logging

    (tmp_path / "notes.txt").write_text("not an image")
    caplog.set_level(logging.INFO, logger="gan_partseg.space")
    with pytest.raises(gr.Error):
        app.segment_upload(str(tmp_path / "notes.txt"), False, 50)
    records = [r for r in caplog.records if r.name == "gan_partseg.space"]
    assert len(records) == 1 and records[0].exc_info is None and "user error" in records[0].getMessage()
    assert str(tmp_path) not in records[0].getMessage()  # no server path in the log line either
    caplog.clear()

    @app.friendly_errors
    def broken():
        raise ZeroDivisionError("a real fault")

    with pytest.raises(gr.Error, match="Something went wrong"):
        broken()
    faults = [r for r in caplog.records if r.name == "gan_partseg.space"]
    assert len(faults) == 1 and faults[0].exc_info is not None  # the traceback is kept in the log
