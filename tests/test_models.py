"""kit.models: parameter counts against hand computation, output shapes, repr, bad input."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from kit import models


def linear_params(sizes):
    return sum(a * b + b for a, b in pairwise(sizes))


def test_mlp_parameter_count_by_hand():
    model = models.MLP((1, 28, 28), widths=(300, 100), num_classes=10)
    assert models.count_parameters(model) == linear_params([784, 300, 100, 10]) == 266_610


def test_mlp_without_hidden_layers_is_logistic_regression():
    model = models.MLP(40, widths=(), num_classes=10)
    assert models.count_parameters(model) == 40 * 10 + 10
    assert model(torch.zeros(5, 40)).shape == (5, 10)


def test_small_cnn_count_and_shape():
    model = models.SmallCNN((1, 28, 28), channels=(16, 32), num_classes=10, batchnorm=True)
    # conv without bias (BN follows): 1*16*9 + BN 2*16, 16*32*9 + BN 2*32, head 32*10+10
    expected = 16 * 9 + 32 + 16 * 32 * 9 + 64 + 330
    assert models.count_parameters(model) == expected
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    flat = models.SmallCNN((1, 28, 28), channels=(16, 32), num_classes=10, global_pool=False)
    assert models.count_parameters(flat) == expected - 330 + 32 * 7 * 7 * 10 + 10  # head reads the 32x7x7 map
    assert flat(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    odd = models.SmallCNN((3, 9, 11), channels=(4,), num_classes=2, global_pool=False)  # floor of odd sides
    assert odd(torch.zeros(2, 3, 9, 11)).shape == (2, 2)


def test_resnet20_matches_the_known_size():
    model = models.resnet20()
    # 19 conv layers, 2 projection shortcuts (1x1), BN everywhere, linear head: 272,474 with projections
    assert models.count_parameters(model) == 272_474
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19  # 1 stem + 3 stages * 3 blocks * 2
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_repr_ends_with_parameter_count():
    assert repr(models.MLP(widths=(10,))).endswith("[MLP: 7,960 parameters]")


def test_trainable_only_count():
    model = models.MLP(4, widths=(3,), num_classes=2)
    model.net[1].weight.requires_grad_(False)
    assert models.count_parameters(model, trainable_only=True) == 3 + 3 * 2 + 2


def test_create_by_name():
    assert isinstance(models.create("mlp", (1, 8, 8), 10), models.MLP)
    assert isinstance(models.create("cnn", (1, 8, 8), 10, channels=(4,)), models.SmallCNN)
    net = models.create("resnet20", (1, 28, 28), 10)
    assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(ValueError, match="mlp, cnn, resnet20"):
        models.create("vgg", (1, 8, 8), 10)


@pytest.mark.parametrize(("build", "name"), [
    (lambda: models.MLP(widths=(0,)), "widths"),
    (lambda: models.MLP(num_classes=0), "num_classes"),
    (lambda: models.MLP(activation="swish"), "activation"),
    (lambda: models.MLP(widths="300"), "widths"),
    (lambda: models.SmallCNN((1, 4, 4), channels=(8, 8, 8)), "pooling"),
    (lambda: models.SmallCNN((28, 28)), "input_shape"),
    (lambda: models.ResNet(depth=21), "depth"),
])
def test_bad_arguments_name_the_parameter(build, name):
    with pytest.raises((ValueError, TypeError), match=name):
        build()


def test_count_parameters_rejects_non_modules():
    with pytest.raises(TypeError, match="model"):
        models.count_parameters([torch.zeros(3)])
