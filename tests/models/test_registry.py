"""The model registry: register, create (with a rebuildable spec), list, look up, resolve factories."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from learnkit.exceptions import ModelError
from learnkit.models import (
    create_model,
    factory_path,
    is_model,
    is_plain_data,
    list_models,
    model_entrypoint,
    model_tags,
    register_model,
    resolve_factory,
    unregister_model,
)


def digits_mlp(n_out=10, hidden=16, act="relu"):
    """A module-level factory (importable as tests.models.test_registry:digits_mlp or by this module's name)."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    return nn.Sequential(nn.Linear(64, hidden), acts[act](), nn.Linear(hidden, n_out))


def digits_mlp_pretrainable(n_out=10, pretrained=False):
    model = digits_mlp(n_out)
    model.was_pretrained = pretrained
    return model


@pytest.fixture
def registered():
    """Register test factories under unique names and remove them afterwards."""
    names = []

    def _reg(fn, name, tags=()):
        register_model(fn, name=name, tags=tags)
        names.append(name)
        return name

    yield _reg
    for n in names:
        unregister_model(n)


def test_register_create_and_spec(registered, digits_tensors):
    (x, y), _ = digits_tensors
    registered(digits_mlp, "lk_test_digits_mlp", tags=("tabular", "test"))
    assert is_model("lk_test_digits_mlp")
    assert model_entrypoint("lk_test_digits_mlp") is digits_mlp
    assert model_tags("lk_test_digits_mlp") == ("tabular", "test")

    model = create_model("lk_test_digits_mlp", n_out=10, hidden=8, act="tanh")
    assert isinstance(model, nn.Sequential) and isinstance(model[1], nn.Tanh)
    assert model(x[:5]).shape == (5, 10)
    assert model.learnkit_spec == {
        "factory": "lk_test_digits_mlp",
        "kwargs": {"n_out": 10, "hidden": 8, "act": "tanh"},
    }

    # the spec is plain data that survives torch.load(weights_only=True) and rebuilds the same architecture
    buf = __import__("io").BytesIO()
    torch.save({"spec": model.learnkit_spec, "state": model.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    rebuilt = resolve_factory(saved["spec"]["factory"])(**saved["spec"]["kwargs"])
    rebuilt.load_state_dict(saved["state"])
    torch.testing.assert_close(rebuilt(x[:5]), model(x[:5]))


def test_decorator_forms(registered):
    @register_model
    def lk_test_plain():
        return nn.Linear(2, 2)

    @register_model(name="lk_test_named", tags="demo")
    def whatever():
        return nn.Linear(2, 3)

    try:
        assert is_model("lk_test_plain") and is_model("lk_test_named")
        assert create_model("lk_test_named").out_features == 3
        assert model_tags("lk_test_named") == ("demo",)
        assert lk_test_plain().out_features == 2  # the decorator returns the function unchanged
    finally:
        unregister_model("lk_test_plain")
        unregister_model("lk_test_named")


def test_list_models_pattern_and_tags(registered):
    registered(digits_mlp, "lk_test_alpha", tags=("test", "small"))
    registered(digits_mlp, "lk_test_beta", tags=("test",))
    assert list_models("lk_test_*") == ["lk_test_alpha", "lk_test_beta"]
    assert list_models("lk_test_*", tags="small") == ["lk_test_alpha"]
    assert list_models(["lk_test_b*", "lk_test_a*"]) == ["lk_test_alpha", "lk_test_beta"]
    assert list_models("lk_test_*", tags=("test", "small")) == ["lk_test_alpha"]
    everything = list_models()
    assert everything == sorted(everything) and "lk_test_alpha" in everything
    # built-in vision models are registered lazily, without importing learnkit.vision first
    assert {"xresnet18", "xresnet50", "simple_cnn", "lenet"} <= set(list_models(tags="vision"))


def test_unknown_name_suggests_close_matches(registered):
    registered(digits_mlp, "lk_test_digits_mlp")
    with pytest.raises(ModelError) as e:
        create_model("lk_test_digit_mlp")
    msg = str(e.value)
    assert "'lk_test_digits_mlp'" in msg and "Did you mean" in msg and "list_models()" in msg
    assert "lk_test_digit_mlp" in msg
    with pytest.raises(ModelError, match="xresnet34"):
        model_entrypoint("xresnet43")
    assert not is_model("lk_test_nothing_like_this")


def test_duplicate_name_is_an_error(registered):
    registered(digits_mlp, "lk_test_dup")
    with pytest.raises(ModelError, match="already registered"):
        register_model(digits_mlp_pretrainable, name="lk_test_dup")
    # same function again (e.g. module reload) is fine, and overwrite=True replaces
    register_model(digits_mlp, name="lk_test_dup")
    register_model(digits_mlp_pretrainable, name="lk_test_dup", overwrite=True)
    assert model_entrypoint("lk_test_dup") is digits_mlp_pretrainable


def test_spec_left_out_for_non_plain_kwargs(registered):
    def with_act(act_cls=nn.ReLU):
        return nn.Sequential(nn.Linear(4, 4), act_cls())

    registered(with_act, "lk_test_act")
    model = create_model("lk_test_act", act_cls=nn.GELU)
    assert isinstance(model[1], nn.GELU)
    assert not hasattr(model, "learnkit_spec")
    assert create_model("lk_test_act").learnkit_spec == {"factory": "lk_test_act", "kwargs": {}}
    assert is_plain_data({"a": [1, 2.0, (None, True)], "b": {"c": "x"}})
    assert not is_plain_data({"a": nn.ReLU}) and not is_plain_data([torch.zeros(1)])


def test_pretrained_flag(registered):
    registered(digits_mlp, "lk_test_scratch")
    registered(digits_mlp_pretrainable, "lk_test_pre")
    with pytest.raises(ModelError, match="pretrained=False"):
        create_model("lk_test_scratch", pretrained=True)
    model = create_model("lk_test_pre", pretrained=True, n_out=3)
    assert model.was_pretrained is True
    assert model.learnkit_spec == {
        "factory": "lk_test_pre",
        "kwargs": {"n_out": 3},
    }  # rebuilt without download
    with pytest.raises(ModelError, match="pretrained"):
        create_model("xresnet18", pretrained=True)


def test_factory_must_return_module(registered):
    def not_a_model():
        return 42

    registered(not_a_model, "lk_test_bad")
    with pytest.raises(ModelError, match="nn.Module"):
        create_model("lk_test_bad")


def test_resolve_factory_from_module_path(tmp_path, monkeypatch):
    pkg = tmp_path / "lk_user_nets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            HIDDEN = 12

            def tiny_net(n_out=2):
                return nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_out))

            class Holder:
                @staticmethod
                def build(n_out=2):
                    return nn.Linear(64, n_out)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = resolve_factory("lk_user_nets.nets:tiny_net")
    assert fn(n_out=4)[-1].out_features == 4
    assert factory_path(fn) == "lk_user_nets.nets:tiny_net"
    assert resolve_factory("lk_user_nets.nets:Holder.build")(3).out_features == 3
    assert resolve_factory("xresnet18").__name__ == "xresnet18"  # registry names resolve too
    assert resolve_factory(fn) is fn

    with pytest.raises(ModelError, match="could not be imported"):
        resolve_factory("lk_user_nets.missing_module:tiny_net")
    with pytest.raises(ModelError) as e:
        resolve_factory("lk_user_nets.nets:tiny_nte")
    assert "no attribute 'tiny_nte'" in str(e.value) and "'tiny_net'" in str(e.value)
    with pytest.raises(ModelError, match="callable"):
        resolve_factory("lk_user_nets.nets:HIDDEN")
    with pytest.raises(ModelError, match="module:function"):
        resolve_factory(":tiny_net")
    with pytest.raises(ModelError, match="Did you mean"):
        resolve_factory("xresnet343")


def test_factory_path_round_trip_and_errors():
    path = factory_path(digits_mlp)
    assert path.endswith(":digits_mlp")
    assert resolve_factory(path) is digits_mlp

    from learnkit.vision.models import xresnet34

    assert factory_path(xresnet34) == "learnkit.vision.models:xresnet34"

    def local_factory():
        return nn.Linear(1, 1)

    with pytest.raises(ModelError, match="module level"):
        factory_path(local_factory)
    with pytest.raises(ModelError, match="module level"):
        factory_path(lambda: nn.Linear(1, 1))
