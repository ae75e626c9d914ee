"""Procedural "toy faces": images with exact part masks in the CelebAMask-HQ 10-class schema.

``render(seed, size)`` is a pure function of its arguments: the same seed gives
the same image and labels on every machine (NumPy's PCG64 and float64 maths).
Every pixel's label is the front-most part whose geometry covers the pixel
centre; the image is rendered at 2x and box-filtered, so edges are antialiased
while labels stay exact.

Variation: position, scale, rotation (+-12 deg), head turn (features and ears
shift), face / eye / mouth / nose / eyebrow shapes, five hair styles (some cover
the forehead or the ears), skin / hair / clothes / background colours,
background gradients, smooth texture, directional lighting and pixel noise.

Seeds: :data:`TRAIN_SEEDS` (GAN training, shots) and :data:`HELD_OUT_SEEDS`
(the "real" test set no training ever sees) do not overlap.
"""

from __future__ import annotations

import math

import numpy as np

from gan_partseg.errors import ArgumentError
from gan_partseg.labels import CLASSES_10

TRAIN_SEEDS = range(0, 1_000_000)
"""Seeds any training may use (GAN training draws from the start of this range)."""
HELD_OUT_SEEDS = range(1_000_000, 1_100_000)
"""Seeds of the held-out "real" test set; no training of any kind uses them."""

MAX_SEED = 2**32 - 1
MIN_SIZE, MAX_SIZE = 16, 1024

_L = {name: i for i, name in enumerate(CLASSES_10)}

_SKIN = np.array([[255, 224, 196], [241, 194, 150], [224, 172, 125], [198, 134, 90], [141, 85, 54], [92, 58, 40]])
_HAIR = np.array([[20, 16, 14], [60, 40, 25], [110, 75, 40], [180, 140, 80], [220, 200, 140], [150, 50, 30],
                  [120, 120, 125], [200, 200, 205]])
_HAIR_STYLES = ("short", "bangs", "long", "long_covering", "bald")


def _check(seed: int, size: int) -> None:
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ArgumentError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ArgumentError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")


def _sample_params(seed: int) -> dict:
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    u = rng.uniform
    skin = _SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 10, 3)
    p = dict(
        cx=u(-0.12, 0.12), cy=u(-0.08, 0.12), scale=u(0.56, 0.74), angle=math.radians(u(-12, 12)),
        turn=u(-0.35, 0.35),
        face_a=u(0.48, 0.62), face_b=u(0.66, 0.8), jaw=u(0.0, 0.25),
        eye_x=u(0.19, 0.26), eye_y=u(-0.12, 0.0), eye_a=u(0.09, 0.13), eye_b=u(0.045, 0.07),
        brow_dy=u(0.11, 0.16), brow_a=u(0.1, 0.15), brow_b=u(0.02, 0.035), brow_tilt=u(-0.25, 0.25),
        nose_len=u(0.2, 0.32), nose_w=u(0.06, 0.11),
        mouth_y=u(0.36, 0.48), mouth_a=u(0.12, 0.22), mouth_b=u(0.035, 0.075), mouth_open=u(0, 1) < 0.3,
        smile=u(-0.15, 0.35),
        hair_style=_HAIR_STYLES[rng.choice(5, p=[0.3, 0.2, 0.2, 0.2, 0.1])],
        hairline=u(-0.5, -0.3), hair_wobble=rng.normal(0, 0.03, 4), hair_phase=u(0, 2 * math.pi, 4),
        skin=skin, hair=hair,
        lip=np.array([170, 70, 80]) * u(0.7, 1.1) + rng.normal(0, 10, 3),
        iris=np.array([[60, 40, 25], [40, 90, 140], [70, 110, 60], [30, 30, 30]])[rng.integers(4)],
        clothes=rng.uniform(20, 235, 3), clothes_pattern=u(0, 1) < 0.4, clothes_freq=u(15, 40),
        bg1=rng.uniform(10, 245, 3), bg2=rng.uniform(10, 245, 3), bg_dir=u(0, 2 * math.pi),
        light=u(0, 2 * math.pi), light_amt=u(0.05, 0.3),
        tex_freq=rng.uniform(4, 14, (6, 2)) * rng.choice([-1, 1], (6, 2)), tex_phase=u(0, 2 * math.pi, 6),
        tex_amp=u(0.02, 0.06), noise_amp=u(1.0, 5.0), noise_seed=int(rng.integers(2**31)),
    )
    return p


def _paint(p: dict, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (H, W) uint8 and colours (H, W, 3) float for image coordinates x, y in [-1, 1]."""
    ca, sa = math.cos(p["angle"]), math.sin(p["angle"])
    dx, dy = (x - p["cx"]) / p["scale"], (y - p["cy"]) / p["scale"]
    u = ca * dx + sa * dy  # face frame: u right, v down, face centre at 0
    v = -sa * dx + ca * dy
    t = p["turn"]
    fu = u - t * 0.22  # feature frame shifts with the head turn

    def ell(cu, cv, a, b, uu=u):
        return ((uu - cu) / a) ** 2 + ((v - cv) / b) ** 2 <= 1.0

    labels = np.zeros(x.shape, np.uint8)
    # background: a linear gradient between two colours
    g = 0.5 + 0.5 * (np.cos(p["bg_dir"]) * x + np.sin(p["bg_dir"]) * y) / math.sqrt(2)
    color = p["bg1"] * (1 - g[..., None]) + p["bg2"] * g[..., None]

    def put(mask, name, col):
        nonlocal color
        labels[mask] = _L[name]
        col = np.broadcast_to(col, color.shape) if np.ndim(col) == 1 else col
        color = np.where(mask[..., None], col, color)

    fa, fb = p["face_a"], p["face_b"]
    theta = np.arctan2(v, u)
    wob = sum(p["hair_wobble"][k] * np.sin((k + 2) * theta + p["hair_phase"][k]) for k in range(4))
    style = p["hair_style"]
    hair_col = p["hair"] * (0.9 + 0.1 * np.sin(u * 25 + v * 6)[..., None])
    if style in ("long", "long_covering"):
        back = ell(0, 0.05, fa + 0.2 + wob, fb + 0.12) & (v < 0.95 + 0.1 * np.cos(u * 5))
        put(back, "hair", hair_col)
    # clothes: wide shoulders; optional stripes
    clothes = ell(0, 1.75, 1.35, 0.85)
    ccol = p["clothes"] * (1 - 0.2 * (np.sin(v * p["clothes_freq"]) > 0)[..., None] * p["clothes_pattern"])
    put(clothes, "clothes", ccol)
    shade = 1 + p["light_amt"] * (np.cos(p["light"]) * u + np.sin(p["light"]) * v)
    skin_col = p["skin"] * shade[..., None]
    neck = (np.abs(u - t * 0.05) < fa * 0.5) & (v > 0.2) & (v < 1.15) & ~ell(0, 1.75, 1.2, 0.78)
    put(neck, "neck", skin_col * 0.85)
    # ears: the far one (turned away) narrows
    for side in (-1, 1):
        w = 0.1 * (1 + side * t * 1.5)
        if w > 0.03:
            put(ell(side * (fa - 0.02) + t * 0.1, 0.02, w, 0.17), "ear", skin_col * 0.92)
    # face: ellipse with a narrowing jaw
    jaw = 1 - p["jaw"] * np.clip(v / fb, 0, 1) ** 2
    face = ((u - t * 0.08) / (fa * jaw)) ** 2 + (v / fb) ** 2 <= 1
    put(face, "skin", skin_col)
    # eyebrows
    for side in (-1, 1):
        cu = side * p["eye_x"] * (1 + side * t * 0.4)
        bv = p["eye_y"] - p["brow_dy"] + side * p["brow_tilt"] * (fu - cu) * 0.3
        brow = ((fu - cu) / p["brow_a"]) ** 2 + ((v - bv) / p["brow_b"]) ** 2 <= 1
        put(brow, "eyebrow", p["hair"] * 0.8)
    # hair on top of the head (and, for some styles, over the ears / forehead)
    if style != "bald":
        hl = p["hairline"] + (0.28 if style == "bangs" else 0.0) + 0.04 * np.cos(u * 9)
        top = ell(0, -0.06, fa + 0.08 + wob, fb + 0.1 + wob) & (v < hl + 0.25 * (u / fa) ** 2)
        if style == "long_covering":
            top |= ell(0, 0.0, fa + 0.14 + wob, fb + 0.05) & (np.abs(u) > fa - 0.12) & (v < 0.4)
        put(top, "hair", hair_col)
    elif p["hairline"] < -0.45:
        put(ell(0, -0.06, fa + 0.05, fb + 0.06) & (v < -fb * 0.8), "hair", hair_col)
    # eyes: white, iris and pupil, all "eye"
    for side in (-1, 1):
        cu = side * p["eye_x"] * (1 + side * t * 0.4)
        a = p["eye_a"] * (1 + side * t * 0.5)
        eye = ell(cu, p["eye_y"], a, p["eye_b"], fu)
        iris = ((fu - cu - t * 0.03) ** 2 + (v - p["eye_y"]) ** 2) <= (p["eye_b"] * 0.95) ** 2
        col = np.where(iris[..., None], p["iris"], np.array([240.0, 240, 235]))
        pupil = ((fu - cu - t * 0.03) ** 2 + (v - p["eye_y"]) ** 2) <= (p["eye_b"] * 0.4) ** 2
        col = np.where(pupil[..., None], np.array([10.0, 10, 10]), col)
        put(eye, "eye", col)
    # nose: a triangle from between the eyes down to the tip, with a darker tip
    top_v = p["eye_y"] + 0.02
    frac = (v - top_v) / p["nose_len"]
    nose = (frac >= 0) & (frac <= 1) & (np.abs(fu) <= p["nose_w"] * (0.35 + 0.65 * frac))
    nose |= ell(0, top_v + p["nose_len"], p["nose_w"] * 1.1, 0.04, fu)
    put(nose, "nose", skin_col * (0.8 + 0.1 * np.clip(frac, 0, 1))[..., None])
    # mouth: lips bent by the smile, dark inside when open
    mv = p["mouth_y"] - p["smile"] * (1 - (fu / p["mouth_a"]) ** 2) * 0.05
    mouth = ((fu / p["mouth_a"]) ** 2 + ((v - mv) / p["mouth_b"]) ** 2) <= 1
    col = np.broadcast_to(p["lip"], color.shape)
    if p["mouth_open"]:
        inner = ((fu / (p["mouth_a"] * 0.75)) ** 2 + ((v - mv) / (p["mouth_b"] * 0.45)) ** 2) <= 1
        col = np.where(inner[..., None], np.array([50.0, 15, 20]), col)
    put(mouth, "mouth", col)

    tex = sum(np.sin(p["tex_freq"][k, 0] * x + p["tex_freq"][k, 1] * y + p["tex_phase"][k]) for k in range(6))
    color = color * (1 + p["tex_amp"] * tex / 3)[..., None]
    return labels, color


def _grid(size: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    n = size * ss
    c = (np.arange(n) + 0.5) / n * 2 - 1
    return np.meshgrid(c, c)  # x varies along columns, y along rows


def render(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render toy face ``seed`` at ``size`` px.

    Returns:
        image: (size, size, 3) uint8 RGB.
        labels: (size, size) uint8 class indices of :data:`gan_partseg.labels.CLASSES_10`
            (0 background, 1 skin, 2 hair, 3 eye, 4 eyebrow, 5 mouth, 6 nose, 7 ear, 8 neck, 9 clothes).
    """
    _check(seed, size)
    p = _sample_params(int(seed))
    labels, _ = _paint(p, *_grid(size, 1))
    _, color = _paint(p, *_grid(size, 2))
    color = color.reshape(size, 2, size, 2, 3).mean((1, 3))
    noise = np.random.Generator(np.random.PCG64(p["noise_seed"])).normal(0, p["noise_amp"], color.shape)
    image = np.clip(np.rint(color + noise), 0, 255).astype(np.uint8)
    return image, labels


def render_batch(seeds, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render many seeds: images (N, size, size, 3) uint8, labels (N, size, size) uint8."""
    pairs = [render(int(s), size) for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
