"""The seed networks, layer for layer, and every preset's shapes and gradients (timm-style)."""

import pytest
import torch

from mnistlab.config import CNN_PRESETS, GAN_PRESETS, CNNConfig
from mnistlab.errors import MnistlabError
from mnistlab.models import CNN, DCGAN
from mnistlab.models.build import build_cnn, build_dcgan
from mnistlab.models.layers import same_padding


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_seed_cnn_matches_the_notebook_layer_for_layer():
    model = build_cnn("seed")
    assert n_params(model) == 121_982
    x = torch.zeros(2, 1, 28, 28)
    shapes = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(4, 28, 28), (8, 14, 14), (12, 7, 7)]
    assert model.flatten(x).shape == (2, 588)
    assert model.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 200)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    weights = torch.cat([m.weight.view(-1) for m in layers])
    biases = torch.cat([m.bias.view(-1) for m in layers])
    assert weights.abs().max() <= 0.2 + 1e-6  # truncated at 2 std of 0.1
    assert 0.07 < weights.std() < 0.1  # a 2-std truncated normal has std ≈ 0.088
    assert torch.all(biases == 0)


@pytest.mark.parametrize(("size", "k", "s", "expected"), [
    (28, 5, 1, (2, 2, 28)), (28, 4, 2, (1, 1, 14)), (14, 4, 2, (1, 1, 7)),
    (28, 5, 2, (1, 2, 14)), (28, 6, 1, (2, 3, 28)), (7, 3, 1, (1, 1, 7)),
])
def test_same_padding_follows_tensorflow(size, k, s, expected):
    assert same_padding(size, k, s) == expected


def test_seed_dcgan_matches_the_notebook_layer_for_layer():
    gan = build_dcgan("seed")
    assert n_params(gan.netG) == 516_897
    assert n_params(gan.netD) == 855_406
    z = gan.noise(5)
    assert z.shape == (5, 100) and z.min() >= -1 and z.max() <= 1
    x = z
    g_shapes = []
    for layer in gan.netG:
        x = layer(x)
        g_shapes.append(tuple(x.shape[1:]))
    assert g_shapes[1] == (64, 7, 7) and (64, 14, 14) in g_shapes and g_shapes[-1] == (1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1  # tanh
    out = gan.netD(x)
    assert out.shape == (5, 2) and out.abs().max() <= 1  # two tanh "logits"
    convs = [m for m in gan.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    assert all(torch.all(m.bias == 0) for m in convs)  # tf.layers: zero biases


@pytest.mark.parametrize("name", sorted(CNN_PRESETS))
def test_every_cnn_preset_gives_logits_and_gradients(name):
    model = CNN(CNN_PRESETS[name].model)
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "some parameters are missing gradients"


@pytest.mark.parametrize("name", sorted(GAN_PRESETS))
def test_every_gan_preset_gives_images_and_gradients(name):
    gan = DCGAN(GAN_PRESETS[name].model)
    z = gan.noise(4)
    images = gan(z)
    assert images.shape == (4, 1, 28, 28)
    gan.discriminate(images, gan.digits(z)).sum().backward()
    assert all(p.grad is not None for p in gan.parameters()), "some parameters are missing gradients"


def test_future_improvements_are_options():
    dilated = build_cnn("seed", dilations=(1, 2, 1))
    assert dilated(torch.rand(1, 1, 28, 28)).shape == (1, 10)
    assert any(getattr(m, "dilation", None) == (2, 2) for m in dilated.modules())
    biased = build_cnn("seed", bias_init="truncated-normal")
    assert any(m.bias.abs().sum() > 0 for m in biased.modules() if isinstance(m, torch.nn.Conv2d))
    constant = build_cnn("seed", bias_init="constant", bias_constant=0.1)
    assert all(torch.allclose(m.bias, torch.tensor(0.1)) for m in constant.modules() if isinstance(m, torch.nn.Conv2d))
    wider = build_cnn("seed", filters=(8, 16, 32, 64), kernels=(3, 3, 3, 3), strides=(1, 2, 2, 1),
                      dilations=(1, 1, 1, 1), batch_norm=True, fc=64)
    assert wider(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_inconsistent_layer_lists_are_a_clear_error():
    from mnistlab.errors import MnistlabError

    with pytest.raises(MnistlabError, match="one entry per conv layer"):
        CNNConfig(filters=(4, 8), kernels=(5, 4, 4))


def test_the_conditional_latent_ends_in_the_one_hot_digit_and_d_is_told_the_digit():
    gan = DCGAN(GAN_PRESETS["default"].model).eval()
    nz = gan.config.nz
    assert gan.config.conditional and gan.latent_dim == nz + 10
    asked = torch.tensor([0, 1, 2, 3, 9, 9])
    z = gan.noise(6, generator=torch.Generator().manual_seed(0), digits=asked)
    assert torch.equal(z[:, nz:], torch.nn.functional.one_hot(asked, 10).float())
    assert torch.equal(gan.digits(z), asked)
    drawn = gan.digits(gan.noise(2000, generator=torch.Generator().manual_seed(1)))
    assert torch.bincount(drawn, minlength=10).min() > 150  # unasked: every digit, in roughly equal shares
    with torch.no_grad():
        images = gan(z)
        judged = gan.discriminate(images, asked)
        assert not torch.allclose(judged, gan.discriminate(images, (asked + 1) % 10))  # the digit matters
    unconditional = DCGAN(GAN_PRESETS["seed"].model)
    assert gan.digits(z) is not None and unconditional.digits(unconditional.noise(2)) is None
    with pytest.raises(MnistlabError, match="conditional needs arch = default"):
        build_dcgan("seed", conditional=True)


def test_same_conv2d_pads_from_its_input_as_tensorflow_does():
    import torch.nn.functional as F

    from mnistlab.models.layers import SameConv2d

    conv = SameConv2d(1, 1, 5, 2)  # on 28x28: total padding 3, the extra pixel bottom/right
    x = torch.randn(1, 1, 28, 28)
    assert conv(x).shape[-2:] == (14, 14) and conv(torch.randn(1, 1, 7, 7)).shape[-2:] == (4, 4)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias, stride=2)
    assert torch.equal(conv(x), expected)


def test_checkpoints_written_before_same_conv2d_still_load():
    from safetensors import safe_open

    from mnistlab.inference import load

    evaluator = "mnistlab/assets/evaluator-v1.safetensors"  # shipped before: odd-padded convs as `.1.weight`
    with safe_open(evaluator, framework="pt") as f:
        old = f.get_tensor("model.features.3.1.weight")
    model = load(evaluator).model
    assert torch.equal(model.state_dict()["features.3.weight"].contiguous(), old)
