import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_partseg.cli import main as cli_main
from gan_partseg.data.shots import read_shots
from gan_partseg.evaluation.evaluate import evaluate_segmenter
from gan_partseg.evaluation.metrics import evaluate_arrays
from gan_partseg.images import load_image, save_image, tensor_to_uint8
from gan_partseg.inversion.latent_optimizer import (
    LatentOptimizer,
    learning_rate,
    noise_normalize_,
    noise_regularize,
    psnr,
)
from gan_partseg.models.fewshot import FewShotSegmenter
from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot


@pytest.fixture
def noisy_generator(tiny_generator):
    with torch.no_grad():
        for conv in tiny_generator.convs:
            conv.noise.weight.fill_(0.1)
    return tiny_generator


def _targets(g, n=2, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        w = g.get_latent(torch.randn(n, 32))
        return g([w], input_is_latent=True, randomize_noise=False).images


def test_inverting_a_generated_image_recovers_it(noisy_generator):
    target = _targets(noisy_generator)
    opt = LatentOptimizer(noisy_generator, space="w+", steps=200, perceptual="none", n_mean_latent=2000,
                          progress=False)
    with torch.no_grad():
        start = psnr(noisy_generator([opt.latent_mean[None].expand(2, -1)], input_is_latent=True,
                                     randomize_noise=False).images, target)
    res = opt.invert(target)
    assert (res.psnr > 17.0).all()  # stated bound for the tiny random generator, 200 steps
    assert (res.psnr > start + 5).all()
    assert res.losses.shape == (200, 2) and res.losses[-1].mean() < res.losses[0].mean()


@pytest.mark.parametrize("space,shape", [("w", (3, 32)), ("w+", (3, 8, 32))])
def test_w_and_wplus_shapes_and_determinism(noisy_generator, space, shape):
    target = _targets(noisy_generator, n=3)
    kw = dict(space=space, steps=5, perceptual="none", n_mean_latent=500, progress=False, batch_size=2)
    a = LatentOptimizer(noisy_generator, **kw).invert(target)
    b = LatentOptimizer(noisy_generator, **kw).invert(target)
    assert a.latents.shape == shape
    assert [n.shape for n in a.noises] == [(3, 1, r, r) for r in noisy_generator.noise_resolutions]
    assert a.reconstructions.shape == (3, 3, 32, 32)
    assert torch.equal(a.latents, b.latents)


def test_noise_renormalisation_and_regulariser():
    torch.manual_seed(0)
    noises = [torch.randn(2, 1, 16, 16) * 3 + 1, torch.randn(2, 1, 8, 8) * 0.1]
    noise_normalize_(noises)
    for n in noises:
        assert torch.allclose(n.mean((1, 2, 3)), torch.zeros(2), atol=1e-5)
        assert torch.allclose(n.std((1, 2, 3)), torch.ones(2), atol=1e-5)
    smooth = [torch.ones(1, 1, 16, 16)]
    assert noise_regularize(smooth).item() > noise_regularize([torch.randn(1, 1, 16, 16)]).item()
    assert learning_rate(0.0, 0.1) == 0.0 and learning_rate(0.5, 0.1) == pytest.approx(0.1)
    assert learning_rate(0.999, 0.1) < 0.01


def test_bad_image_shape_is_named(noisy_generator):
    opt = LatentOptimizer(noisy_generator, steps=1, perceptual="none", n_mean_latent=100, progress=False)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        opt.invert(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="space"):
        LatentOptimizer(noisy_generator, space="z")


def test_load_image_converts_and_notes(tmp_path):
    Image.fromarray(np.full((40, 50), 128, np.uint8), mode="L").save(tmp_path / "gray.png")
    arr, notes = load_image(tmp_path / "gray.png", 32)
    assert arr.shape == (32, 32, 3)
    assert any("converted to RGB" in n for n in notes) and any("centre-cropped" in n for n in notes)
    assert any("resized" in n for n in notes)
    rgba = np.zeros((32, 32, 4), np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    arr, notes = load_image(tmp_path / "rgba.png", 32)
    assert (arr == 255).all() and "alpha" in notes[0]
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.png is not a readable image"):
        load_image(tmp_path / "junk.png", 32)


def _write_real_folder(g, folder, n=2):
    target = _targets(g, n=n, seed=5)
    imgs = tensor_to_uint8(target)
    for i, im in enumerate(imgs):
        save_image(folder / "images" / f"r{i}.png", im)
        lab = np.digitize(im.astype(float).mean(-1), [85, 170]).astype(np.uint8)
        save_image(folder / "labels" / f"r{i}.png", Image.fromarray(lab, mode="L"))
    (folder / "labels" / "id2label.json").write_text(json.dumps({"0": "dark", "1": "mid", "2": "light"}))
    return target


def test_make_shots_output_trains_and_evaluate_matches_metrics(noisy_generator, tmp_path, capsys):
    noisy_generator.save_pretrained(tmp_path / "gen")
    gen = str(tmp_path / "gen")
    _write_real_folder(noisy_generator, tmp_path / "real")
    common = ["--steps", "30", "--perceptual", "none", "--generator", gen]
    assert cli_main(["make-shots", "--images", str(tmp_path / "real" / "images"), "--labels",
                     str(tmp_path / "real" / "labels"), str(tmp_path / "shots"), *common]) == 0
    shots, id2label = read_shots(tmp_path / "shots")
    assert len(shots) == 2 and id2label[2] == "light" and shots[0].latent.shape == (1, 8, 32)
    model = train_fewshot(TrainFewShotConfig(generator=gen, shots=str(tmp_path / "shots"), head="mlp-1", steps=20,
                                             out=str(tmp_path / "seg")), progress=False)
    assert model.n_classes == 3
    # evaluate's numbers equal metrics on the same arrays
    seg = FewShotSegmenter.from_pretrained(tmp_path / "seg")
    kw = dict(space="w+", steps=30, perceptual="none", n_mean_latent=500, progress=False)
    result = evaluate_segmenter(seg, tmp_path / "real" / "images", labels=tmp_path / "real" / "labels", **kw)
    images = torch.stack([torch.from_numpy(load_image(tmp_path / "real" / "images" / f"r{i}.png", 32)[0])
                          for i in range(2)]).permute(0, 3, 1, 2).float() / 127.5 - 1
    pred = seg.segment_images(images, **kw).labels
    labels = np.stack([np.asarray(Image.open(tmp_path / "real" / "labels" / f"r{i}.png")) for i in range(2)])
    expected = evaluate_arrays(pred.numpy(), labels, 3, ["dark", "mid", "light"])
    assert result["weighted_iou"] == pytest.approx(expected["weighted_iou"])
    assert result["per_class_iou"] == pytest.approx(expected["per_class_iou"])
    # the CLI prints the same JSON
    assert cli_main(["evaluate", "--segmenter", str(tmp_path / "seg"), "--data",
                     str(tmp_path / "real" / "images"), "--labels", str(tmp_path / "real" / "labels"),
                     "--steps", "30", "--perceptual", "none", "--out", str(tmp_path / "eval.json")]) == 0
    printed = json.loads((tmp_path / "eval.json").read_text())
    same = evaluate_segmenter(seg, tmp_path / "real" / "images", labels=tmp_path / "real" / "labels", steps=30,
                              perceptual="none", progress=False)  # the CLI's settings (its default n_mean_latent)
    assert printed["n_images"] == 2 and printed["per_class_iou"] == pytest.approx(same["per_class_iou"])
    # the old spellings still work for one release, and say what replaces them
    capsys.readouterr()
    assert cli_main(["evaluate-fewshot", "--segmenter", str(tmp_path / "seg"), "--images",
                     str(tmp_path / "real" / "images"), "--labels", str(tmp_path / "real" / "labels"),
                     "--no-background", "--steps", "30", "--perceptual", "none",
                     "--out", str(tmp_path / "old.json")]) == 0
    err = capsys.readouterr().err
    assert "evaluate-fewshot is deprecated" in err and "use --exclude-class 0" in err
    old = json.loads((tmp_path / "old.json").read_text())
    assert "dark" not in old["per_class_iou"] and "mid" in old["per_class_iou"]  # class 0 left out
    assert Image.open(tmp_path / "eval.png").mode == "RGB"


def test_make_shots_mirror_adds_each_face_flipped(noisy_generator, tmp_path, capsys):
    """--mirror: every annotated image also inverted flipped left-right, its labels flipped with it (this schema
    has no sided class, so no id changes), as a shot NAME-mirror."""
    noisy_generator.save_pretrained(tmp_path / "gen")
    _write_real_folder(noisy_generator, tmp_path / "real", n=1)
    assert cli_main(["make-shots", "--images", str(tmp_path / "real" / "images"), "--labels",
                     str(tmp_path / "real" / "labels"), str(tmp_path / "shots"), "--mirror", "--steps", "5",
                     "--perceptual", "none", "--generator", str(tmp_path / "gen")]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 shots (1 annotated, each also mirrored)" in out and "swap no class" in out
    shots = {s.name: s for s in read_shots(tmp_path / "shots")[0]}
    assert sorted(shots) == ["r0", "r0-mirror"]
    truth = np.asarray(Image.open(tmp_path / "real" / "labels" / "r0.png"))
    assert np.array_equal(shots["r0"].labels, truth) and np.array_equal(shots["r0-mirror"].labels, truth[:, ::-1])
    assert not torch.equal(shots["r0"].latent, shots["r0-mirror"].latent)  # a face of its own, inverted


def test_make_shots_names_a_16_bit_label_id_beyond_uint8(noisy_generator, tmp_path, capsys):
    """A 16-bit label PNG with id 300 is refused by name; it must not wrap to 44 (or 255, "ignore") on its way
    to the shot's uint8 map."""
    noisy_generator.save_pretrained(tmp_path / "gen")
    _write_real_folder(noisy_generator, tmp_path / "real", n=1)
    lab = np.asarray(Image.open(tmp_path / "real" / "labels" / "r0.png")).astype(np.int32)
    lab[0, 0] = 300
    Image.fromarray(lab, mode="I").save(tmp_path / "real" / "labels" / "r0.png")
    assert cli_main(["make-shots", "--images", str(tmp_path / "real" / "images"), "--labels",
                     str(tmp_path / "real" / "labels"), str(tmp_path / "shots"), "--steps", "2",
                     "--perceptual", "none", "--generator", str(tmp_path / "gen")]) == 2
    assert "class ids [300] outside id2label" in capsys.readouterr().err
    assert not (tmp_path / "shots").exists()


def test_cli_invert_and_bad_folders(noisy_generator, tmp_path, capsys):
    noisy_generator.save_pretrained(tmp_path / "gen")
    gen = str(tmp_path / "gen")
    _write_real_folder(noisy_generator, tmp_path / "real", n=1)
    assert cli_main(["invert", str(tmp_path / "real" / "images"), str(tmp_path / "inv"), "--generator", gen,
                     "--steps", "10", "--perceptual", "none", "--space", "w"]) == 0
    summary = json.loads((tmp_path / "inv" / "inversion.json").read_text())
    assert summary["n_images"] == 1 and summary["space"] == "w"
    assert (tmp_path / "inv" / "reconstructions" / "r0.png").exists()
    (tmp_path / "empty").mkdir()
    assert cli_main(["invert", str(tmp_path / "empty"), str(tmp_path / "inv2"), "--generator", gen]) == 2
    assert "holds no images" in capsys.readouterr().err
    (tmp_path / "real" / "labels" / "r0.png").unlink()
    assert cli_main(["make-shots", "--images", str(tmp_path / "real" / "images"), "--labels",
                     str(tmp_path / "real" / "labels"), str(tmp_path / "shots"), "--generator", gen]) == 2
    assert "no label file" in capsys.readouterr().err
    assert not (tmp_path / "shots").exists()


def test_inversion_leaves_the_callers_generator_as_it_was(tiny_generator):
    """The optimizer freezes the generator while it works, and gives it back trainable and in its mode."""
    g = tiny_generator.train()
    g.requires_grad_(True)
    LatentOptimizer(g, steps=2, perceptual="none", n_mean_latent=50, progress=False).invert(
        torch.zeros(1, 3, g.config.size, g.config.size))
    assert g.training and all(p.requires_grad for p in g.parameters())


def test_the_default_batch_follows_the_generators_activations(noisy_generator):
    """At 1024 px config-f a batch of 8 needed more than 24 GiB (benchmarks/full_size.py): the default batch is
    sized by the layer activations, 8 for small generators, 1 at 1024 px, and a batch given is kept."""
    from gan_partseg import StyleGAN2Config, StyleGAN2Generator
    from gan_partseg.inversion.latent_optimizer import (
        INVERSION_ACTIVATION_FACTOR,
        MAX_INVERSION_BATCH,
        InversionConfig,
        auto_inversion_batch,
    )

    assert LatentOptimizer(noisy_generator, steps=1, perceptual="none").batch_size == MAX_INVERSION_BATCH
    assert LatentOptimizer(noisy_generator, steps=1, perceptual="none", batch_size=3).batch_size == 3
    per_image = INVERSION_ACTIVATION_FACTOR * noisy_generator.activation_bytes()
    assert auto_inversion_batch(noisy_generator, budget=2 * per_image) == 2
    with torch.device("meta"):  # the 1024 px layout without allocating its weights
        big = StyleGAN2Generator(StyleGAN2Config(size=1024, style_dim=512, n_mlp=8, channel_multiplier=2))
    assert big.activation_bytes() == 4 * 131_407_872 and auto_inversion_batch(big) == 1
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        InversionConfig(batch_size=0)
