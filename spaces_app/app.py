"""gan_partseg Space: sample, annotate, train, segment -- on the CPU, with the bundled toy-face models.

Tabs:
* Generate: a generated face and its few-shot segmentation (10 or 3 classes).
* Annotate and train: paint parts on generated faces with one fixed-colour brush per part, add them
  as shots, train a head on them (seconds), see it segment new faces, download head and shots.
* Your image: the auto-shot U-Net's segmentation of an upload and the area of every part; optionally
  the slow path through GAN inversion.

The handlers are plain functions (``generate``, ``add_shot``, ``train_head``, ...) so tests call
them directly; ``build_demo()`` wires them into a ``gr.Blocks``. Errors reach the interface as
``gr.Error`` messages, never as stack traces, and no file-system path is shown.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from gan_partseg import AutoShotSegmenter, FewShotSegmenter, StyleGAN2Generator
from gan_partseg.data.shots import Shot, write_id2label, write_shot
from gan_partseg.errors import ImageError, UserError
from gan_partseg.images import open_rgb, overlay, tensor_to_uint8, uint8_to_tensor, upscale
from gan_partseg.labels import CLASSES_3, CLASSES_10, MISS_BELOW, counted, id2label, misses_text, palette_for, to_three_class
from gan_partseg.models.stylegan2 import TRUNCATION
from gan_partseg.visualize import legend

GENERATOR = "toyfaces-64"
FEWSHOT = "toyfaces-64-fewshot-10c-10shot"
AUTOSHOT = "toyfaces-64-autoshot-10c"
VIEW = 256  # faces are shown and painted at about this many pixels, whatever the generator's size


def _size() -> int:
    """The generator's image size (px): every picture and label map of the Space follows it."""
    return int(Models.get(GENERATOR).config.size)


def _scale() -> int:
    return max(1, VIEW // _size())
MAX_PIXELS = 16_000_000  # uploads above this are refused before decoding
MAX_UPLOAD = "10mb"
MAX_STEPS = 600
DEFAULT_STEPS = 150  # the training slider's opening value: a 1-shot mlp-1 in seconds (benchmarks/fewshot_train_time.py)
MAX_SHOTS = 20
HEADS = ["cnn-s", "cnn-m", "cnn-l", "mlp-1", "mlp-2"]
log = logging.getLogger("gan_partseg.space")


class Models:
    """The bundled models, loaded once and shared (read-only) by every session."""

    _lock = threading.Lock()
    _cache: dict = {}

    @classmethod
    def get(cls, name: str):
        with cls._lock:
            if name not in cls._cache:
                if name == GENERATOR:
                    cls._cache[name] = StyleGAN2Generator.from_pretrained(name).eval()
                elif name == FEWSHOT:
                    seg = FewShotSegmenter.from_pretrained(name).eval()
                    seg.set_generator(cls._cache.get(GENERATOR) or StyleGAN2Generator.from_pretrained(GENERATOR).eval())
                    cls._cache[name] = seg
                else:
                    cls._cache[name] = AutoShotSegmenter.from_pretrained(name).eval()
            return cls._cache[name]


def friendly_errors(fn):
    """Show gr.Error messages as they are; turn anything unexpected into a short message (logged in full)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as err:  # an ordinary user error: one log line, no traceback
            log.info("%s: user error: %s", fn.__name__, err.message)
            raise
        except UserError as err:  # the package's own checks (an image, shots, a model folder): one line too
            log.info("%s: user error: %s", fn.__name__, err)
            raise gr.Error(re.sub(r"\S*/\S+", "the file", str(err))) from None  # no server path is shown
        except Exception as err:  # a real fault: logged with its traceback; never a stack trace in the interface
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(err).__name__}). Please try again; if it persists, "
                           "try another image or fewer steps.") from None

    return wrapper


def _classes(class_set: str) -> tuple[str, ...]:
    return CLASSES_3 if class_set.startswith("3") else CLASSES_10


def _show(image_u8: np.ndarray) -> np.ndarray:
    return upscale(image_u8, _scale())


def _sample(seed: int, truncation: float):
    g = Models.get(GENERATOR)
    seed = int(seed)
    if not 0 <= seed < 2**31:
        raise gr.Error("The seed must be a whole number between 0 and 2147483647.")
    if not 0.1 <= float(truncation) <= 1.0:
        raise gr.Error("Truncation must lie between 0.1 and 1.0.")
    w, noise = g.seeded_latents([seed], float(truncation))
    with torch.no_grad():
        image = tensor_to_uint8(g([w], input_is_latent=True, noise=noise, randomize_noise=False).images)[0]
    return w, noise, image


@friendly_errors
def generate(seed: int, truncation: float, class_set: str):
    """-> (image, overlay, legend) as (256, 256, 3) uint8 pictures."""
    w, noise, image = _sample(seed, truncation)
    labels = Models.get(FEWSHOT).segment_latents(w, noise).labels[0].numpy()
    names = _classes(class_set)
    if names == CLASSES_3:
        labels = to_three_class(labels)
    over = overlay(image, labels, len(names), alpha=0.6)
    return _show(image), _show(over), legend(id2label(names))


# -- annotate and train -----------------------------------------------------------------------

def new_session() -> dict:
    return {"shots": [], "current": None, "head": None, "training": False}


@friendly_errors
def new_sample(seed: int, state: dict):
    """A generated face to paint; -> (editor value, state, status)."""
    state = state or new_session()
    w, noise, image = _sample(seed, TRUNCATION["view"])
    state["current"] = {"seed": int(seed), "w": w, "noise": noise, "image": image}
    side = _size() * _scale()
    blank = np.zeros((side, side, 4), np.uint8)
    return ({"background": _show(image), "layers": [blank], "composite": _show(image)}, state,
            f"Face {int(seed)}: paint its parts, then add it as a shot.")


def strokes_to_labels(layer: np.ndarray, n_classes: int = len(CLASSES_10), size: int | None = None) -> np.ndarray:
    """An RGBA paint layer (S*size, S*size, 4) -> (size, size) class ids.

    Painted pixels (alpha > 127) take the class of the nearest palette colour (antialiased stroke
    edges land on the closest part); unpainted ones are background. Each size x size cell takes the
    majority class of its block.
    """
    size = size or _size()
    layer = np.asarray(layer)
    if layer.ndim != 3 or layer.shape[-1] not in (3, 4):
        raise gr.Error("The annotation layer is not an image.")
    rgb = layer[..., :3].astype(np.int32)
    painted = layer[..., 3] > 127 if layer.shape[-1] == 4 else rgb.sum(-1) > 0
    palette = palette_for(n_classes).astype(np.int32)
    dist = ((rgb[..., None, :] - palette[None, None]) ** 2).sum(-1)
    ids = np.where(painted, dist.argmin(-1), 0)
    h = layer.shape[0]
    if h % size or layer.shape[1] != h:
        pil = Image.fromarray(ids.astype(np.uint8)).resize((size * _scale(), size * _scale()), Image.NEAREST)
        ids, h = np.asarray(pil), size * _scale()
    block = h // size
    onehot = np.eye(n_classes, dtype=np.int32)[ids].reshape(size, block, size, block, n_classes).sum((1, 3))
    return onehot.argmax(-1).astype(np.uint8)


@friendly_errors
def add_shot(editor: dict | None, state: dict):
    """Editor value -> a new shot in the session; -> (state, status, shots gallery)."""
    state = state or new_session()
    if state.get("current") is None:
        raise gr.Error("Draw a face first (New face), then paint it.")
    layers = (editor or {}).get("layers") or []
    if not layers or layers[0] is None:
        raise gr.Error("The annotation is empty: paint at least one part before adding the shot.")
    labels = strokes_to_labels(layers[0])
    if not (labels > 0).any():
        raise gr.Error("The annotation is empty: paint at least one part before adding the shot.")
    if len(state["shots"]) >= MAX_SHOTS:
        raise gr.Error(f"This demo keeps at most {MAX_SHOTS} shots.")
    cur = state["current"]
    state["shots"].append(Shot(name=f"seed{cur['seed']:07d}", image=cur["image"], labels=labels, latent=cur["w"],
                               noise=[n for n in cur["noise"]], generator=GENERATOR, space="w"))
    state["current"] = None
    painted = sorted({CLASSES_10[i] for i in np.unique(labels) if i > 0})
    return state, f"{counted(len(state['shots']), 'shot')}. This one shows: {', '.join(painted)}.", _gallery(state)


def _gallery(state: dict) -> list:
    return [overlay(_show(s.image), upscale(s.labels, _scale()), len(CLASSES_10), 0.6) for s in state["shots"]]


@friendly_errors
def train_head(head: str, steps: int, state: dict, progress=gr.Progress(track_tqdm=True)):
    """Train a head on the session's shots; -> (state, status, preview of new faces)."""
    from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot

    state = state or new_session()
    if not state["shots"]:
        raise gr.Error("Add at least one painted shot before training.")
    if head not in HEADS:
        raise gr.Error(f"Unknown head {head!r}; choose one of {', '.join(HEADS)}.")
    steps = int(steps)
    if not 10 <= steps <= MAX_STEPS:
        raise gr.Error(f"Training steps must lie between 10 and {MAX_STEPS}.")
    if state.get("training"):
        raise gr.Error("Training is already running for this session; wait for it to finish.")
    present = set(np.unique(np.concatenate([s.labels.ravel() for s in state["shots"]])).tolist())
    missing = [CLASSES_10[i] for i in range(1, len(CLASSES_10)) if i not in present]
    state["training"] = True
    try:
        model = train_fewshot(TrainFewShotConfig(generator=GENERATOR, head=head, steps=steps, seed=0),
                              generator=Models.get(GENERATOR), shots=(state["shots"], id2label(CLASSES_10)),
                              progress=True)
    finally:
        state["training"] = False
    state["head"] = model
    preview = _preview(model)
    status = f"Trained {head} on {counted(len(state['shots']), 'shot')} in {model.training_summary['seconds']:.0f} s."
    if missing:
        status += f" Not painted in any shot, so never predicted: {', '.join(missing)}."
        gr.Warning(f"No strokes for: {', '.join(missing)}.")
    return state, status, preview


def _preview(model: FewShotSegmenter, seeds=(1001, 1002, 1003, 1004)) -> np.ndarray:
    g = Models.get(GENERATOR)
    w, noise = g.seeded_latents(list(seeds))
    out = model.segment_latents(w, noise)
    images = tensor_to_uint8(out.images)
    tiles = [np.concatenate([_show(im), _show(overlay(im, lab, len(CLASSES_10), 0.6))], 1)
             for im, lab in zip(images, out.labels.numpy())]
    return np.concatenate(tiles, 0)


def _zip_folder(folder: Path, name: str) -> str:
    out = Path(tempfile.mkdtemp(prefix="gan_partseg_")) / f"{name}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    shutil.rmtree(folder, ignore_errors=True)
    return str(out)


@friendly_errors
def download_head(state: dict):
    """The trained head as a zipped model folder (loads with FewShotSegmenter.from_pretrained)."""
    from gan_partseg.training.fewshot import save_fewshot

    if not state or state.get("head") is None:
        raise gr.Error("Train a head first.")
    folder = Path(tempfile.mkdtemp(prefix="gan_partseg_")) / "my-fewshot-segmenter"
    save_fewshot(state["head"], folder)
    return _zip_folder(folder.parent, "my-fewshot-segmenter")


@friendly_errors
def download_shots(state: dict):
    """The shots in the documented folder format (images/, labels/, latents/, id2label.json), zipped."""
    if not state or not state["shots"]:
        raise gr.Error("Add a shot first.")
    folder = Path(tempfile.mkdtemp(prefix="gan_partseg_"))
    for s in state["shots"]:
        write_shot(folder, s.name, s.image, s.labels, s.latent, s.noise, GENERATOR)
    write_id2label(folder, id2label(CLASSES_10))
    return _zip_folder(folder, "shots")


# -- your image -------------------------------------------------------------------------------

def open_upload(path: str | None) -> Image.Image:
    """A checked RGB image from an uploaded file (size and type checked before decoding)."""
    if not path:
        raise gr.Error("Upload an image first.")
    try:
        image, _ = open_rgb(path, max_pixels=MAX_PIXELS)  # the package's checks: size from the header, 16-bit, alpha
    except ImageError as err:
        if "megapixels" in str(err):
            raise gr.Error(str(err).replace(str(path), "The image").split(": it was not decoded")[0]
                           + ". Please downscale it first.") from None
        raise gr.Error("That file is not an image this demo can read (PNG, JPEG, WebP, BMP).") from None
    return image


def _area_table(labels: np.ndarray, names: tuple[str, ...]) -> list[list]:
    total = labels.size
    return [[names[i], f"{100 * (labels == i).sum() / total:.1f}%"] for i in range(1, len(names))
            if (labels == i).any()]


@friendly_errors
def segment_upload(path: str | None, slow: bool, steps: int, progress=gr.Progress(track_tqdm=True)):
    """-> (auto-shot overlay, part areas, inversion picture or None, status)."""
    image = open_upload(path)
    unet = Models.get(AUTOSHOT)
    small = np.asarray(image.resize((256, 256), Image.BILINEAR))
    upload = Image.fromarray(small)
    labels = unet.segment(upload).numpy()
    names = tuple(unet.id2label[i] for i in range(len(unet.id2label)))
    over = overlay(small, labels, len(names), 0.6)
    inversion, status = None, "Auto-shot U-Net: one forward pass."
    if unet.is_far(upload):  # every upload judged on its own (the warning itself shows once per process)
        far = ("This image looks nothing like the toy faces these models learned: expect wrong parts. "
               "Try a face drawn in the first tab, or train models on your own images.")
        gr.Warning(far)
        status = f"{far} {status}"
    if slow:
        steps = int(steps)
        if not 20 <= steps <= 300:
            raise gr.Error("Inversion steps must lie between 20 and 300.")
        seg = Models.get(FEWSHOT)
        x = uint8_to_tensor(np.asarray(image.resize((_size(), _size()), Image.BILINEAR)))
        out = seg.segment_images(x, steps=steps, progress=True)
        recon = tensor_to_uint8(out.images)[0]
        inversion = np.concatenate([_show(recon), _show(overlay(recon, out.labels[0].numpy(), len(names), 0.6))], 1)
        status += f" Inversion: {steps} steps, PSNR {float(out.inversion.psnr[0]):.1f} dB."
    return over, _area_table(labels, names), inversion, status


def quality_markdown(names=(FEWSHOT, AUTOSHOT)) -> str:
    """Per-class IoU of the bundled segmenters on held-out faces (their ``evaluation.json``), the classes
    each one loses named; an empty string when none records its figures."""
    import json

    from gan_partseg.hub import resolve_pretrained

    rows = []
    for name in names:
        path = Path(resolve_pretrained(name)) / "evaluation.json"
        if path.is_file():
            rows.append((name, json.loads(path.read_text())))
    if not rows:
        return ""
    classes = list(rows[0][1]["per_class_iou"])
    lines = ["| model | mean IoU | weighted IoU | " + " | ".join(classes) + " |", "|" + "---|" * (3 + len(classes))]
    lost = []
    for name, r in rows:
        pc = r["per_class_iou"]
        lines.append(f"| {name} | {100 * r['mean_iou']:.0f} | {100 * r['weighted_iou']:.0f} | "
                     + " | ".join("-" if pc[c] is None else f"{100 * pc[c]:.0f}" for c in classes) + " |")
        if misses_text(pc):
            lost.append(f"{name} {misses_text(pc)}")
    note = (("**" + "; ".join(lost) + f"** (IoU under {100 * MISS_BELOW:.0f}).") if lost
            else f"Every model finds every part (IoU {100 * MISS_BELOW:.0f} or more).")
    tests = "; ".join(f"{name}: {r['test']}" for name, r in rows)
    return ("### How well the bundled models find each part\nIoU x 100 on held-out rendered faces that no "
            f"model trained on ({tests}).\n\n" + "\n".join(lines) + "\n\n" + note)


def build_demo() -> gr.Blocks:
    palette = palette_for(len(CLASSES_10))
    brush_colors = ["#%02x%02x%02x" % tuple(int(c) for c in palette[i]) for i in range(1, len(CLASSES_10))]
    with gr.Blocks(title="gan_partseg: parts from a few examples") as demo:
        gr.Markdown("# gan_partseg\nSegment the parts of a face from a few painted examples, by reading a "
                    "StyleGAN2's activations. Everything runs on the CPU with small models trained on "
                    "procedural toy faces.")
        quality = quality_markdown()
        if quality:
            with gr.Accordion("Model quality, per part", open=False):
                gr.Markdown(quality)
        with gr.Tab("Generate"):
            with gr.Row():
                seed = gr.Number(value=7, precision=0, label="seed", minimum=0)
                trunc = gr.Slider(0.3, 1.0, value=TRUNCATION["view"], step=0.05, label="truncation")
                class_set = gr.Radio(["10 classes", "3 classes (eye, mouth, nose)"], value="10 classes",
                                     label="classes")
            go = gr.Button("Generate", variant="primary")
            with gr.Row():
                img = gr.Image(label="generated face", format="png")
                over = gr.Image(label="few-shot segmentation", format="png")
            leg = gr.Image(label="legend", show_label=False, format="png")
            go.click(generate, [seed, trunc, class_set], [img, over, leg], api_name="generate")

        with gr.Tab("Annotate and train"):
            state = gr.State(new_session())
            gr.Markdown("1. **New face**. 2. Paint each part with its colour (legend below; the eraser "
                        "undoes). 3. **Add as shot**. Repeat for a few faces, then **Train**.")
            with gr.Row():
                a_seed = gr.Number(value=11, precision=0, label="face seed", minimum=0)
                new = gr.Button("New face")
            editor = gr.ImageEditor(label="paint the parts", type="numpy", image_mode="RGBA",
                                    brush=gr.Brush(colors=brush_colors, default_color=brush_colors[0],
                                                   color_mode="fixed", default_size=8),
                                    eraser=gr.Eraser(default_size=8), transforms=(), sources=(), layers=False,
                                    canvas_size=(256, 256), fixed_canvas=True, format="png", elem_id="annotator")
            gr.Image(value=legend(id2label(CLASSES_10)), show_label=False, interactive=False, format="png")
            add = gr.Button("Add as shot")
            status = gr.Markdown("No shots yet.", elem_id="annotate-status")
            gallery = gr.Gallery(label="shots", columns=6, height=200, object_fit="contain")
            with gr.Row():
                head = gr.Dropdown(HEADS, value="mlp-1", label="head")
                steps = gr.Slider(10, MAX_STEPS, value=DEFAULT_STEPS, step=10, label="training steps")
                train = gr.Button("Train", variant="primary", elem_id="train-button")
            preview = gr.Image(label="the new head on unseen faces", format="png", elem_id="preview")
            with gr.Row():
                dl_head, dl_shots = gr.Button("Download head"), gr.Button("Download shots")
                file_out = gr.File(label="download")
            new.click(new_sample, [a_seed, state], [editor, state, status], api_name="new_face")
            add.click(add_shot, [editor, state], [state, status, gallery], api_name="add_shot")
            train.click(train_head, [head, steps, state], [state, status, preview], api_name="train",
                        concurrency_limit=1, trigger_mode="once")
            dl_head.click(download_head, [state], [file_out], api_name="download_head")
            dl_shots.click(download_shots, [state], [file_out], api_name="download_shots")

        with gr.Tab("Your image"):
            # a File, not an Image: every upload reaches open_upload, which names what is wrong with it
            up = gr.File(type="filepath", label="your image (PNG / JPEG / WebP, up to 16 MP)")
            with gr.Row():
                slow = gr.Checkbox(False, label="also segment through GAN inversion (slow)")
                inv_steps = gr.Slider(20, 300, value=100, step=10, label="inversion steps")
            run = gr.Button("Segment", variant="primary")
            with gr.Row():
                seg_over = gr.Image(label="auto-shot segmentation", format="png")
                areas = gr.Dataframe(headers=["part", "area"], label="part areas")
            inv_img = gr.Image(label="inversion: reconstruction and its segmentation", format="png")
            u_status = gr.Markdown()
            run.click(segment_upload, [up, slow, inv_steps], [seg_over, areas, inv_img, u_status],
                      api_name="segment", concurrency_limit=2)
    demo.queue(max_size=32, default_concurrency_limit=2)
    return demo


def launch(**kwargs):
    """Launch with the Space's limits (upload size) on top of ``kwargs`` (server_name, server_port, ...)."""
    kwargs.setdefault("max_file_size", MAX_UPLOAD)
    return build_demo().launch(**kwargs)


if __name__ == "__main__":
    launch()
