import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_partseg.cli import main as cli_main
from gan_partseg.data.shots import ShotsError, read_shots, write_id2label, write_shot
from gan_partseg.errors import ArgumentError
from gan_partseg.evaluation.metrics import evaluate_arrays
from gan_partseg.images import tensor_to_uint8
from gan_partseg.models.fewshot import FewShotSegmenter, FewShotSegmenterConfig
from gan_partseg.models.heads import CNN_DILATIONS, SegmentationHead, parse_head, receptive_field
from gan_partseg.training.fewshot import TrainFewShotConfig, train_fewshot

HEADS = ["cnn-s", "cnn-m", "cnn-l", "mlp-0", "mlp-1", "mlp-2", "ensemble-3"]


def _features(g, n=2):
    with torch.no_grad():
        return g([torch.randn(n, 32)], return_features=True).features


@pytest.mark.parametrize("spec", HEADS)
@pytest.mark.parametrize("size,up,down", [(32, "bilinear", "area"), (16, "bilinear", "area"),
                                          (48, "nearest", "area"), (24, "bicubic", "bilinear")])
def test_head_matches_naive_concat(tiny_generator, spec, size, up, down):
    feats = _features(tiny_generator)
    torch.manual_seed(0)
    head = SegmentationHead({k: v.shape[1] for k, v in feats.items()}, 4, **parse_head(spec))
    naive = head(feats, size, up, down, path="naive").logits
    assert naive.shape == (2, 4, size, size)
    for plan in ("auto", "project-first", "resize-first"):
        eff = head(feats, size, up, down, plan=plan).logits
        assert ((eff - naive).abs().max() / naive.abs().max()) < 1e-5


def test_efficient_gradients_match_naive(tiny_generator):
    feats = _features(tiny_generator)
    torch.manual_seed(0)
    head = SegmentationHead({k: v.shape[1] for k, v in feats.items()}, 3, head="cnn", cnn_size="M")
    grads = []
    for path in ("naive", "efficient"):
        head.zero_grad()
        head(feats, 32, path=path).logits.square().mean().backward()
        grads.append(head.project.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_cnn_sizes_and_receptive_fields(tiny_generator):
    feats = _features(tiny_generator)
    ch = {k: v.shape[1] for k, v in feats.items()}
    assert receptive_field("L") == 61
    for size, dil in CNN_DILATIONS.items():
        head = SegmentationHead(ch, 5, head="cnn", cnn_size=size)
        convs = [m for m in head.body if isinstance(m, torch.nn.Conv2d)]
        assert [c.dilation[0] for c in convs[:-1]] == list(dil)
        assert convs[0].in_channels == 128 and convs[-2].out_channels == 32 and convs[-1].out_channels == 5
    assert len([m for m in SegmentationHead(ch, 5, head="cnn", cnn_size="L").body
                if isinstance(m, torch.nn.Conv2d)]) == 8  # 1x1 projection + 8 = "1+8 layers"
    with pytest.raises(ValueError, match="unknown head"):
        parse_head("cnn-xl")


@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_checkpointed_body_gives_same_gradients(tiny_generator, size):
    feats = _features(tiny_generator)
    ch = {k: v.shape[1] for k, v in feats.items()}
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        head = SegmentationHead(ch, 3, head="cnn", cnn_size=size, checkpoint_body=ckpt).train()
        head(feats, 32).logits.square().mean().backward()
        grads.append([p.grad for p in head.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_checkpoint_segments_cut_only_after_activations():
    from torch import nn

    from gan_partseg.models.heads import checkpoint_segments

    body = nn.Sequential(*[m for _ in range(7) for m in (nn.Conv2d(4, 4, 3, padding=1), nn.LeakyReLU(0.2, True))],
                         nn.Conv2d(4, 2, 1))
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    ref = torch.autograd.grad(body(x).square().sum(), x)[0]
    for segments in (None, 1, 2, 3, 4, 7, 20):  # checkpoint_sequential would cut 3 or 4 pieces between a conv and its activation
        out = checkpoint_segments(body, x, segments)
        torch.testing.assert_close(torch.autograd.grad(out.square().sum(), x)[0], ref)


def _make_shots(g, folder, n=1, seed=0, generator_name="tiny"):
    torch.manual_seed(seed)
    labels_all = []
    for i in range(n):
        w = g.get_latent(torch.randn(1, 32))
        noise = g.make_noise()
        with torch.no_grad():
            img = tensor_to_uint8(g([w], input_is_latent=True, noise=noise).images)[0]
        gray = img.astype(float).mean(-1)
        lab = np.digitize(gray, np.quantile(gray, [0.33, 0.66])).astype(np.uint8)
        write_shot(folder, f"s{i}", img, lab, w.detach(), noise, generator_name)
        labels_all.append((w.detach(), noise, lab))
    write_id2label(folder, {0: "dark", 1: "mid", 2: "light"})
    return labels_all


@pytest.mark.parametrize("head,steps", [("cnn-l", 120), ("mlp-1", 300)])
def test_training_on_one_shot_overfits_it(tiny_generator, tmp_path, head, steps):
    ((w, noise, lab),) = _make_shots(tiny_generator, tmp_path / "shots")
    # style_mix 0: these labels are brightness bands, which a copy in other colours would not keep
    model = train_fewshot(TrainFewShotConfig(generator="tiny", shots=str(tmp_path / "shots"), head=head,
                                             steps=steps, style_mix=0, out=str(tmp_path / "model")),
                          generator=tiny_generator, progress=False)
    s = model.training_summary
    assert s["final_loss"] < 0.5 * s["first_loss"]
    pred = model.segment_latents(w, noise).labels
    assert evaluate_arrays(pred.numpy(), lab[None], 3)["mean_iou"] > 0.9
    # save / load identity
    loaded = FewShotSegmenter.from_pretrained(tmp_path / "model")
    loaded.set_generator(tiny_generator)
    out_a, out_b = model.segment_latents(w, noise), loaded.segment_latents(w, noise)
    assert torch.equal(out_a.logits, out_b.logits)
    assert loaded.id2label == {0: "dark", 1: "mid", 2: "light"}
    assert json.loads((tmp_path / "model" / "training.json").read_text())["k"] == 1
    assert "generator" not in " ".join(loaded.state_dict())


def test_shots_at_the_generator_size_train_a_head_of_a_smaller_output(tiny_generator, tmp_path):
    """The paper's setting: shots painted at the generator's size (1024 px), logits at 512 px. Labels are resized
    (nearest) to the output size, ignored pixels (255) included."""
    import torch.nn.functional as F

    from gan_partseg.data.shots import read_shots
    from gan_partseg.labels import IGNORE_INDEX

    ((w, noise, lab),) = _make_shots(tiny_generator, tmp_path / "shots")
    unsure = lab.copy()
    unsure[:8, :8] = IGNORE_INDEX  # a corner the user left unlabelled: not trained on, not an error
    Image.fromarray(unsure, mode="L").save(tmp_path / "shots" / "labels" / "s0.png")
    assert (read_shots(tmp_path / "shots")[0][0].labels == IGNORE_INDEX).sum() == 64
    model = train_fewshot(TrainFewShotConfig(generator="tiny", shots=str(tmp_path / "shots"), head="mlp-1",
                                             steps=300, output_size=16, style_mix=0),  # labels: brightness bands
                          generator=tiny_generator, progress=False)
    pred = model.segment_latents(w, noise).labels
    assert pred.shape[-2:] == (16, 16) and model.config.output_size == 16
    small = F.interpolate(torch.from_numpy(lab)[None, None].float(), size=(16, 16), mode="nearest-exact")[0, 0]
    assert evaluate_arrays(pred.numpy(), small.long().numpy()[None], 3)["mean_iou"] > 0.85
    assert np.array_equal(small.numpy(), lab[1::2, 1::2])  # 2x down: source pixel 2i+1, as PIL's NEAREST picks
    assert np.array_equal(np.asarray(Image.fromarray(lab).resize((16, 16), Image.NEAREST)), lab[1::2, 1::2])


def test_training_is_deterministic_with_a_seed(tiny_generator, tmp_path):
    _make_shots(tiny_generator, tmp_path / "shots", n=2)
    cfg = TrainFewShotConfig(generator="tiny", shots=str(tmp_path / "shots"), head="mlp-1", steps=10,
                             batch=1, augment="flip", seed=3)
    a = train_fewshot(cfg, generator=tiny_generator, progress=False)
    b = train_fewshot(cfg, generator=tiny_generator, progress=False)
    for (k, v), (_, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, v2), k


def test_one_annotated_face_trains_with_style_mixed_copies(tiny_generator, tmp_path):
    """One face: by default 8 copies keep its first mix_from styles (shape) and take a random sample's later ones
    (colours); copies are drawn into steps, so the head differs from one trained on the shot alone, and the
    run stays exact under its seed. A shot and its -mirror copy count as one face; two faces get no copies."""
    from gan_partseg.training.fewshot import effective_style_mix, mixed_latents

    assert effective_style_mix(None, ["a"]) == 8 and effective_style_mix(None, ["a", "a-mirror"]) == 8
    assert effective_style_mix(None, ["a", "b"]) == 0 and effective_style_mix(2, ["a", "b"]) == 2
    ((w, noise, lab),) = _make_shots(tiny_generator, tmp_path / "shots")
    shots = read_shots(tmp_path / "shots")
    g = tiny_generator
    mixed = mixed_latents(g, shots[0], copies=3, mix_from=2, seed=5)[0]
    assert mixed.shape == (3, g.n_latent, 32)
    assert torch.equal(mixed[:, :2], w.expand(3, 2, 32))  # a W shot's style, repeated as W+
    again = mixed_latents(g, shots[0], copies=3, mix_from=2, seed=5)[0]
    assert torch.equal(mixed, again) and not torch.equal(mixed[0, 2:], mixed[1, 2:])
    assert torch.allclose(mixed[:, 2:], mixed[:, 2:3].expand(3, g.n_latent - 2, 32))  # one sample's w per copy

    def run(**kw):
        return train_fewshot(TrainFewShotConfig(generator="tiny", head="mlp-1", steps=20, seed=1, **kw),
                             generator=g, shots=shots, progress=False)

    a, b, plain = run(), run(), run(style_mix=0)
    assert a.training_summary["style_mix"] == 8 and plain.training_summary["style_mix"] == 0
    for (name, v), (_, v2), (_, v0) in zip(a.state_dict().items(), b.state_dict().items(), plain.state_dict().items()):
        assert torch.equal(v, v2), name
    assert any(not torch.equal(v, v0) for v, v0 in zip(a.state_dict().values(), plain.state_dict().values()))
    with pytest.raises(ArgumentError, match=r"mix_from must be a W\+ index in \[1, 7\]"):
        run(mix_from=g.n_latent)
    with pytest.raises(ArgumentError, match="style_mix must be >= 0"):
        run(style_mix=-1)


def test_layer_scaling_is_folded_into_the_saved_head(tiny_generator, tmp_path):
    """By default the head trains on each layer's activations over their RMS on random samples; the scales are
    folded into the first layer, so the saved head on raw activations gives what the trained head gave on
    scaled ones, and it trains differently from an unscaled head."""
    from gan_partseg.training.fewshot import layer_rms

    g = tiny_generator
    ((w, noise, lab),) = _make_shots(g, tmp_path / "shots")
    shots = read_shots(tmp_path / "shots")
    layers = list(g([torch.zeros(1, 32)], return_features=True).features)
    rms = layer_rms(g, layers, samples=8)
    assert rms == layer_rms(g, layers, samples=8) and all(v > 0 for v in rms.values())
    assert len(set(rms.values())) == len(rms)  # layers differ in scale: the point of scaling them

    def run(**kw):
        return train_fewshot(TrainFewShotConfig(generator="tiny", head="mlp-1", steps=20, seed=1, style_mix=0, **kw),
                             generator=g, shots=shots, progress=False)

    scaled, plain = run(), run(feature_scale="none")
    assert scaled.training_summary["layer_rms"] and plain.training_summary["layer_rms"] is None
    feats = g([w], input_is_latent=True, noise=noise, randomize_noise=False, return_features=True).features
    feats = {n: feats[n] for n in scaled.config.feature_layers}
    rms = layer_rms(g, scaled.config.feature_layers)  # the training's own samples
    unfolded = copy.deepcopy(scaled)
    unfolded.head.project.fold_input_scale(rms)  # multiplying by the RMS undoes the fold
    with torch.no_grad():
        a = scaled(feats).logits
        b = unfolded({n: f / rms[n] for n, f in feats.items()}).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, plain(feats).logits, atol=1e-3)
    with pytest.raises(ArgumentError, match="feature_scale must be one of"):
        run(feature_scale="channel")
    with pytest.raises(ValueError, match="scales for layers the head does not read"):
        scaled.head.project.fold_input_scale({"nope": 2.0})


def test_ensemble_returns_members_and_disagreement(tiny_generator):
    from gan_partseg.models.heads import disagreement

    config = FewShotSegmenterConfig.for_generator(tiny_generator, "tiny", {0: "a", 1: "b"}, **parse_head("ensemble-4"))
    model = FewShotSegmenter(config)
    model.set_generator(tiny_generator)
    out = model.segment_latents(tiny_generator.mean_latent(16))
    assert out.member_logits.shape == (1, 4, 2, 32, 32)
    js = disagreement(out.member_logits)
    assert js.shape == (1, 32, 32) and (js >= -1e-6).all()
    assert torch.allclose(out.logits.exp().sum(1), torch.ones(1, 32, 32), atol=1e-5)


# ------------------------------------------------------------------ bad input


def _train(g, folder, **kw):
    return train_fewshot(TrainFewShotConfig(generator="tiny", shots=str(folder), steps=2, **kw), generator=g,
                         progress=False)


def test_label_of_wrong_size_is_named(tiny_generator, tmp_path):
    _make_shots(tiny_generator, tmp_path)
    Image.fromarray(np.ones((16, 16), np.uint8), mode="L").save(tmp_path / "labels" / "s0.png")
    with pytest.raises(ShotsError, match=r"labels/s0.png is 16x16 but its image is 32x32"):
        _train(tiny_generator, tmp_path)


def test_labels_outside_id2label_are_named(tiny_generator, tmp_path):
    _make_shots(tiny_generator, tmp_path)
    Image.fromarray(np.full((32, 32), 7, np.uint8), mode="L").save(tmp_path / "labels" / "s0.png")
    with pytest.raises(ShotsError, match=r"s0.png holds class ids \[7\]"):
        _train(tiny_generator, tmp_path)


def test_missing_files_and_empty_labels(tiny_generator, tmp_path):
    _make_shots(tiny_generator, tmp_path, n=2)
    (tmp_path / "latents" / "s1.safetensors").unlink()
    with pytest.raises(ShotsError, match=r"latents/s1.safetensors is missing"):
        _train(tiny_generator, tmp_path)
    (tmp_path / "images" / "s1.png").unlink()
    Image.fromarray(np.zeros((32, 32), np.uint8), mode="L").save(tmp_path / "labels" / "s0.png")
    with pytest.raises(ShotsError, match="all background"):
        _train(tiny_generator, tmp_path)
    (tmp_path / "id2label.json").unlink()
    with pytest.raises(ShotsError, match="id2label.json is missing"):
        read_shots(tmp_path)


def test_mixed_generators_are_refused(tiny_generator, tmp_path):
    _make_shots(tiny_generator, tmp_path, n=1, generator_name="tiny")
    w = tiny_generator.mean_latent(8)
    img = tensor_to_uint8(tiny_generator([w], input_is_latent=True).images)[0]
    write_shot(tmp_path, "other", img, np.ones((32, 32), np.uint8), w, tiny_generator.make_noise(), "ffhq-256")
    with pytest.raises(ShotsError, match="mixes shots of different generators"):
        _train(tiny_generator, tmp_path)


def test_latent_of_wrong_shape_is_named(tiny_generator, tmp_path):
    _make_shots(tiny_generator, tmp_path)
    img = tensor_to_uint8(tiny_generator([tiny_generator.mean_latent(8)], input_is_latent=True).images)[0]
    write_shot(tmp_path, "bad", img, np.ones((32, 32), np.uint8), torch.zeros(1, 3, 32),
               tiny_generator.make_noise(), "tiny")
    out = tmp_path / "never"
    with pytest.raises(ShotsError, match=r"latents/bad.safetensors: latent is \(1, 3, 32\)"):
        train_fewshot(TrainFewShotConfig(generator="tiny", shots=str(tmp_path), steps=2, out=str(out)),
                      generator=tiny_generator, progress=False)
    assert not out.exists()


def test_cli_sample_then_train(tiny_generator, tmp_path, capsys):
    tiny_generator.save_pretrained(tmp_path / "gen")
    gen = str(tmp_path / "gen")
    assert cli_main(["sample", "--generator", gen, "--out", str(tmp_path / "shots"), "--n", "2",
                     "--classes", "3"]) == 0
    shots, id2label = read_shots(tmp_path / "shots", allow_empty=True)
    assert len(shots) == 2 and id2label[1] == "eye" and not shots[0].labels.any()
    # an unpainted folder is refused with a message that says what to do
    assert cli_main(["train-fewshot", "--generator", gen, "--shots", str(tmp_path / "shots"), "--steps", "2"]) == 2
    assert "paint the parts first" in capsys.readouterr().err
    for s in shots:
        lab = np.zeros((32, 32), np.uint8)
        lab[8:16, 8:24] = 1
        Image.fromarray(lab, mode="L").save(tmp_path / "shots" / "labels" / f"{s.name}.png")
    assert cli_main(["train-fewshot", "--generator", gen, "--shots", str(tmp_path / "shots"), "--steps", "3",
                     "--head", "mlp-0", "--out", str(tmp_path / "model")]) == 0
    m = FewShotSegmenter.from_pretrained(tmp_path / "model")
    assert m.config.generator == gen and m.n_classes == 4


def test_scaled_dilations_follow_the_output_size_and_the_paper_schedule_stays_reachable():
    from gan_partseg.models.heads import CNN_DILATIONS, cnn_dilations, parse_head, receptive_field

    assert parse_head("cnn-l") == {"head": "cnn", "cnn_size": "L", "dilation_rule": "paper"}
    assert parse_head("cnn-l/scale")["dilation_rule"] == "scale"
    assert cnn_dilations("L", 512, "scale") == CNN_DILATIONS["L"]  # the paper's size: the paper's schedule
    assert cnn_dilations("L", 64, "scale") == (1, 1, 1, 1, 1, 1, 1)
    assert cnn_dilations("L", 64, "paper") == CNN_DILATIONS["L"]
    assert receptive_field("L", 64, "scale") < receptive_field("L", 64) == 61
    with pytest.raises(ValueError, match="dilation_rule"):
        cnn_dilations("L", 64, "wide")


def test_a_scaled_cnn_head_saves_and_loads_with_its_dilations(tiny_generator, tmp_path):
    config = FewShotSegmenterConfig.for_generator(tiny_generator, "tiny", {0: "a", 1: "b"}, output_size=32,
                                                  **parse_head("cnn-l/scale"))
    model = FewShotSegmenter(config)
    dilations = [m.dilation[0] for m in model.head.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert dilations[:7] == [1] * 7  # 32 px: every paper dilation scales down to 1
    model.save_pretrained(tmp_path / "m")
    again = FewShotSegmenter.from_pretrained(tmp_path / "m")
    assert again.config.dilation_rule == "scale"
    assert [m.dilation[0] for m in again.head.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)] \
        == dilations


@pytest.mark.parametrize("spec", ["cnn-m", "mlp-1"])
def test_a_bfloat16_cache_computes_in_float32_with_exact_gradients(tiny_generator, monkeypatch, spec):
    """bf16 features through the chunked low-precision projection == float32 math on the same (rounded) values."""
    import gan_partseg.models.heads as heads

    monkeypatch.setattr(heads, "UPCAST_ELEMENTS", 64)  # many channel chunks even on the tiny generator
    low = {k: v.to(torch.bfloat16) for k, v in _features(tiny_generator).items()}
    ref = {k: v.float() for k, v in low.items()}
    torch.manual_seed(0)
    head = SegmentationHead({k: v.shape[1] for k, v in low.items()}, 3, **parse_head(spec))
    results = []
    for feats, path in ((ref, "naive"), (low, "efficient"), (low, "naive")):
        head.zero_grad()
        logits = head(feats, 32, path=path).logits
        assert logits.dtype == torch.float32
        logits.square().mean().backward()
        results.append((logits.detach(), head.project.weight.grad.clone()))
    for logits, grad in results[1:]:
        torch.testing.assert_close(logits, results[0][0], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-4, atol=1e-7)


def test_cache_dtype_is_checked_and_a_bfloat16_cache_trains(tiny_generator, tmp_path):
    from gan_partseg.errors import ArgumentError

    _make_shots(tiny_generator, tmp_path / "shots")
    cfg = dict(generator="tiny", shots=str(tmp_path / "shots"), head="mlp-1", steps=60)
    with pytest.raises(ArgumentError, match="cache_dtype must be one of"):
        train_fewshot(TrainFewShotConfig(**cfg, cache_dtype="int8"), generator=tiny_generator, progress=False)
    model = train_fewshot(TrainFewShotConfig(**cfg, cache_dtype="bfloat16"), generator=tiny_generator, progress=False)
    s = model.training_summary
    assert s["final_loss"] < 0.7 * s["first_loss"]


@pytest.mark.parametrize("up", ["bilinear", "nearest", "bicubic"])
def test_channels_last_resize_gives_the_default_layouts_values(monkeypatch, up):
    import gan_partseg.models.features as features

    x = torch.randn(2, 5, 8, 8, requires_grad=True)
    results = []
    for flag in (False, True):
        monkeypatch.setattr(features, "RESIZE_CHANNELS_LAST", flag)
        y = features.resize(x, 32, up, "area")
        results.append((y.detach(), torch.autograd.grad(y.square().sum(), x)[0]))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
