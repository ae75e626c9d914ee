"""The optional fused kernels of csrc/: parity with the PyTorch ops, gradcheck, fallback, lazy build."""

import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from gan_partseg.models import fused, ops
from tests.conftest import tiny_config

HAVE_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None
needs_compiler = pytest.mark.skipif(not HAVE_COMPILER, reason="no C++ compiler on this machine: the fused kernels "
                                                              "cannot be built (the PyTorch path is used)")


@pytest.fixture
def fused_on():
    fused.reset()
    fused.request("all")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a build failure must fail these tests
        module = fused.load()
    assert module is not None, fused._state["error"]
    yield module
    fused.reset()


def both(fn):
    """fn() with the fused ops and with PyTorch's."""
    fused.request("all")
    a = fn()
    fused.request(None)
    b = fn()
    fused.request("all")
    return a, b


CASES = [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (2, 2)), (2, 1, (-1, -2)), (1, 2, (-1, 0)), (4, 1, (1, 0))]


@needs_compiler
@pytest.mark.parametrize("up,down,pad", CASES)
def test_upfirdn2d_matches_pytorch_forward_and_backward(fused_on, up, down, pad):
    k = ops.make_kernel([1, 3, 3, 1])
    x = torch.randn(2, 5, 9, 7, requires_grad=True)
    g = None

    def run():
        nonlocal g
        x.grad = None
        out = ops.upfirdn2d(x, k, up, down, pad)
        if g is None:
            g = torch.randn_like(out)
        out.backward(g)
        return out.detach(), x.grad.clone()

    (a, ga), (b, gb) = both(run)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


@needs_compiler
def test_gradcheck_in_double(fused_on):
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: ops.fused_leaky_relu(x, b), (x, b))
    assert torch.autograd.gradgradcheck(lambda x, b: ops.fused_leaky_relu(x, b), (x, b))  # R1 needs it
    k = ops.make_kernel([1, 3, 3, 1]).double()
    for up, down, pad in CASES:
        x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: ops.upfirdn2d(t, k, up, down, pad), (x,))
        assert torch.autograd.gradgradcheck(lambda t: ops.upfirdn2d(t, k, up, down, pad), (x,))


@needs_compiler
def test_bias_act_matches_pytorch(fused_on):
    x = torch.randn(4, 6, 3, 5, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    lin = torch.randn(3, 6, requires_grad=True)

    def run():
        x.grad = bias.grad = lin.grad = None
        out = ops.fused_leaky_relu(x, bias) + ops.fused_leaky_relu(lin, bias, 0.1, 1.5).sum()
        out.square().sum().backward()
        return out.detach(), x.grad.clone(), bias.grad.clone(), lin.grad.clone()

    for a, b in zip(*both(run)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@needs_compiler
def test_generator_and_discriminator_with_r1_match(fused_on, tiny_generator, tiny_discriminator):
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))

    def run():
        tiny_generator.zero_grad()
        tiny_discriminator.zero_grad()
        img = tiny_generator([z], randomize_noise=False).images
        real = img.detach().requires_grad_(True)
        logits = tiny_discriminator(real).logits
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)  # R1: double backward
        loss = grad.square().sum() + tiny_discriminator(img).logits.sum()
        loss.backward()
        return (img.detach(), loss.detach(), tiny_generator.convs[0].conv.weight.grad.clone(),
                tiny_discriminator.convs[1].conv1[0].weight.grad.clone())

    for a, b in zip(*both(run)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_failed_build_falls_back_with_one_warning(tmp_path, monkeypatch):
    broken = tmp_path / "csrc"
    broken.mkdir()
    (broken / "bindings.cpp").write_text("this is not C++ {")
    for name in ("fused_bias_act.cpp", "upfirdn2d.cpp"):
        (broken / name).write_text("int broken = ;\n")
    monkeypatch.setenv("GAN_PARTSEG_CSRC", str(broken))
    monkeypatch.setenv("GAN_PARTSEG_CACHE", str(tmp_path / "cache"))
    fused.reset()
    fused.request("all")
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    expected = torch.nn.functional.leaky_relu(x + b.view(1, 3, 1, 1), 0.2) * 2 ** 0.5
    try:
        with pytest.warns(RuntimeWarning, match="could not be built.*using the PyTorch ops"):
            out = ops.fused_leaky_relu(x, b)
        torch.testing.assert_close(out, expected)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one warning only: later calls stay quiet
            torch.testing.assert_close(ops.fused_leaky_relu(x, b), expected)
    finally:
        fused.reset()


def test_missing_sources_fall_back(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PARTSEG_CSRC", str(tmp_path))  # no bindings.cpp there
    monkeypatch.setattr(fused, "sources_dir", lambda: None)
    fused.reset()
    fused.request("all")
    try:
        with pytest.warns(RuntimeWarning, match="sources are not installed"):
            ops.upfirdn2d(torch.randn(1, 1, 4, 4), ops.make_kernel([1, 1]), 1, 1, (0, 1))
    finally:
        fused.reset()


def test_nothing_is_compiled_at_import_or_without_asking(tmp_path):
    code = (
        "import torch, gan_partseg\n"
        "from gan_partseg.models import fused\n"
        "from gan_partseg import StyleGAN2Generator\n"
        "from tests.conftest import tiny_config\n"
        "g = StyleGAN2Generator(tiny_config())\n"
        "g([torch.randn(1, 32)])\n"
        "assert not fused._state['tried'], 'built without being asked'\n"
        "import os; assert not os.path.exists(os.environ['GAN_PARTSEG_CACHE'] + '/fused')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "GAN_PARTSEG_CACHE": str(tmp_path), "GAN_PARTSEG_FUSED": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
    fused.reset()
    os.environ.pop("GAN_PARTSEG_FUSED", None)
    assert fused.requested_ops() == frozenset()


def test_requests_from_env_and_config(monkeypatch):
    fused.reset()
    monkeypatch.setenv("GAN_PARTSEG_FUSED", "1")
    assert fused.requested_ops("cpu") == fused.FUSED_DEFAULT_OPS["cpu"]  # only the ops measured faster
    monkeypatch.setenv("GAN_PARTSEG_FUSED", "all")
    assert fused.requested_ops() == fused.ALL_OPS
    monkeypatch.setenv("GAN_PARTSEG_FUSED", "upfirdn2d")
    assert fused.requested_ops() == {"upfirdn2d"}
    monkeypatch.delenv("GAN_PARTSEG_FUSED")
    from gan_partseg import StyleGAN2Generator

    StyleGAN2Generator(tiny_config(fused_ops=True))
    assert fused._state["requested"] == "default" and fused.requested_ops("cuda") == fused.FUSED_DEFAULT_OPS["cuda"]
    assert not fused._state["tried"]  # asked for, but built only on first use
    fused.reset()
