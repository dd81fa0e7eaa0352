"""EmbeddingDotBias and EmbeddingNN: fastai's attribute names, the formula, the registry, names -> factors."""

from __future__ import annotations

import pytest
import torch

from learnkit.collab import EmbeddingDotBias, EmbeddingNN, create_model, list_models, sigmoid_range
from learnkit.exceptions import DataError, ModelError


def test_dot_bias_is_dot_product_plus_biases_in_sigmoid_range():
    torch.manual_seed(0)
    m = EmbeddingDotBias(5, n_users=7, n_items=9, y_range=(0, 5.5))
    for e in (m.u_weight, m.i_weight, m.u_bias, m.i_bias):
        assert isinstance(e, torch.nn.Embedding)
        torch.nn.init.normal_(e.weight)
    x = torch.tensor([[1, 2], [6, 8], [0, 0]])
    u, i = x[:, 0], x[:, 1]
    raw = (m.u_weight.weight[u] * m.i_weight.weight[i]).sum(1) + m.u_bias.weight[u, 0] + m.i_bias.weight[i, 0]
    torch.testing.assert_close(m(x), torch.sigmoid(raw) * 5.5)
    assert m(x).shape == (3,)
    m.y_range = None
    torch.testing.assert_close(m(x), raw)


def test_nn_model_outputs_stay_in_y_range():
    m = EmbeddingNN([(10, 4), (20, 6)], layers=[16, 8], y_range=(1, 5), ps=[0.1, 0.0])
    out = m(torch.stack([torch.randint(0, 10, (64,)), torch.randint(0, 20, (64,))], 1))
    assert out.shape == (64, 1) and out.min() > 1 and out.max() < 5
    assert sigmoid_range(torch.tensor([-50.0, 50.0]), 1, 5).tolist() == [1.0, 5.0]


def test_models_are_registered_and_rebuild_from_their_spec():
    assert {"embedding_dot_bias", "embedding_nn"} <= set(list_models("embedding*"))
    classes = {"user": ["#na#", 1, 2, 3], "movie": ["#na#", "a", "b"]}
    m = EmbeddingDotBias.from_classes(4, classes, y_range=(0, 5))
    spec = m.learnkit_spec
    assert spec == {
        "factory": "embedding_dot_bias",
        "kwargs": {"n_factors": 4, "n_users": 4, "n_items": 3, "y_range": [0.0, 5.0]},
    }
    m2 = create_model(spec["factory"], **spec["kwargs"])
    m2.load_state_dict(m.state_dict())
    x = torch.tensor([[1, 1], [3, 2]])
    torch.testing.assert_close(m2(x), m(x))
    n = EmbeddingNN.from_classes([(4, 3), (3, 2)], [8], classes, y_range=(0, 5))
    assert create_model(n.learnkit_spec["factory"], **n.learnkit_spec["kwargs"])(x).shape == (2, 1)


def test_bias_and_weight_take_names():
    classes = {"user": ["#na#", 10, 20], "movie": ["#na#", "a", "b", "c"]}
    m = EmbeddingDotBias.from_classes(3, classes)
    torch.testing.assert_close(m.bias(["c", "a"]), m.i_bias.weight[[3, 1], 0])
    torch.testing.assert_close(m.bias(20, is_item=False), m.u_bias.weight[[2], 0])
    torch.testing.assert_close(m.weight(["b"]), m.i_weight.weight[[2]])
    with pytest.raises(DataError, match=r"unknown movie \['zzz'\].*retraining"):
        m.bias(["a", "zzz"])
    with pytest.raises(ModelError, match="does not know the user and item names"):
        EmbeddingDotBias(3, 3, 4).bias(["a"])


def test_bad_model_arguments_are_errors():
    with pytest.raises(ModelError, match="n_factors"):
        EmbeddingDotBias(0, 3, 3)
    with pytest.raises(ModelError, match="low < high"):
        EmbeddingDotBias(2, 3, 3, y_range=(5, 0))
    with pytest.raises(ModelError, match="one dropout per layer"):
        EmbeddingNN([(3, 2), (3, 2)], [4, 4], ps=[0.1])
