"""The layers' state_dict / load_state_dict: PyTorch's names, so trained weights move both ways.

Specification:
- ``state_dict()`` holds the arrays a layer has under PyTorch's names -- ``weight`` (gamma),
  ``bias`` (beta), ``running_mean``, ``running_var``, ``num_batches_tracked`` (a 0-d int64) --
  the same keys as the matching torch.nn module's; the arrays are the layer's own;
- ``load_state_dict(sd)`` of another layer's state makes the layer compute bitwise what that one
  does; values are cast to the layer's dtypes (float64 rounds into float32 parameters), torch CPU
  tensors are taken as they are, and a torch module's state loaded into fastbn gives its output;
- with ``strict`` (the default) a missing or unexpected key is a ValueError; without, they are
  returned as ``(missing_keys, unexpected_keys)`` and the rest is loaded;
- a bad value (wrong shape, not real numbers, a count that is not a non-negative integer) is an
  error naming ``state_dict[key]``, and a call that fails writes nothing;
- ``reset_parameters()`` gives every layer the state of a new one, in place; every layer has
  PyTorch's ``train(mode)`` / ``eval()`` (returning the layer) and ``training`` flag.
"""
import numpy as np
import pytest

import fastbn

LAYERS = {
    "BatchNorm": lambda: fastbn.BatchNorm(3),
    "BatchNorm affine=False": lambda: fastbn.BatchNorm(3, affine=False),
    "BatchNorm untracked": lambda: fastbn.BatchNorm(3, track_running_stats=False),
    "LayerNorm": lambda: fastbn.LayerNorm((3, 4)),
    "LayerNorm bias=False": lambda: fastbn.LayerNorm((3, 4), bias=False),
    "RMSNorm": lambda: fastbn.RMSNorm(4),
    "GroupNorm": lambda: fastbn.GroupNorm(3, 3),
    "InstanceNorm affine": lambda: fastbn.InstanceNorm(3, affine=True),
    "InstanceNorm tracked": lambda: fastbn.InstanceNorm(3, track_running_stats=True),
}
# torch's modules with the same state (None: no torch counterpart of that configuration)
TORCH = {
    "BatchNorm": lambda nn: nn.BatchNorm2d(3),
    "BatchNorm affine=False": lambda nn: nn.BatchNorm2d(3, affine=False),
    "BatchNorm untracked": lambda nn: nn.BatchNorm2d(3, track_running_stats=False),
    "LayerNorm": lambda nn: nn.LayerNorm((3, 4)),
    "LayerNorm bias=False": lambda nn: nn.LayerNorm((3, 4), bias=False),
    "RMSNorm": lambda nn: nn.RMSNorm(4),
    "GroupNorm": lambda nn: nn.GroupNorm(3, 3),
    "InstanceNorm affine": lambda nn: nn.InstanceNorm2d(3, affine=True),
    "InstanceNorm tracked": lambda nn: nn.InstanceNorm2d(3, track_running_stats=True),
}
X = np.random.default_rng(0).normal(1.0, 2.0, (2, 3, 3, 4)).astype(np.float32)


def _trained(make, seed):
    layer = make()
    rng = np.random.default_rng(seed)
    for key, a in layer.state_dict().items():
        if key == "num_batches_tracked":
            layer.num_batches_tracked = 7
        else:
            a[...] = rng.uniform(0.5, 2.0, a.shape)
    return layer


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_loaded_state_computes_what_the_saved_layer_does(name):
    src, dst = _trained(LAYERS[name], 1), LAYERS[name]()
    sd = src.state_dict()
    for key, a in sd.items():
        if key != "num_batches_tracked":
            attr = {"weight": "gamma", "bias": "beta"}.get(key, key)
            assert a is getattr(src, attr)
    assert dst.load_state_dict(sd) == ([], [])
    assert dst.state_dict().keys() == sd.keys()
    for key, a in dst.state_dict().items():
        assert np.asarray(a).tobytes() == np.asarray(sd[key]).tobytes(), key
    for layer in (src, dst):
        layer.eval()
    assert dst(X).tobytes() == src(X).tobytes()


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_keys_are_torchs(name):
    torch = pytest.importorskip("torch")
    assert list(LAYERS[name]().state_dict()) == list(TORCH[name](torch.nn).state_dict())


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_torch_state_gives_torchs_output(name):
    torch = pytest.importorskip("torch")
    module = TORCH[name](torch.nn)
    with torch.no_grad():
        for t in module.parameters():
            t.uniform_(0.5, 2.0)
        if getattr(module, "running_var", None) is not None:
            module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.5, 2.0)
    layer = LAYERS[name]()
    layer.load_state_dict(module.state_dict())     # tensors as they are
    module.eval()
    layer.eval()
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(layer(X), want, rtol=2e-6, atol=2e-6)


def test_values_are_cast_to_the_layers_dtypes():
    layer = fastbn.LayerNorm(3, dtype=np.float16)       # float32 parameters
    layer.load_state_dict({"weight": np.array([0.1, 0.2, 0.3]), "bias": np.arange(3)})
    assert layer.gamma.dtype == np.float32
    assert layer.gamma.tolist() == np.float32([0.1, 0.2, 0.3]).tolist()
    assert layer.beta.tolist() == [0.0, 1.0, 2.0]
    bn = fastbn.BatchNorm(2)
    bn.load_state_dict({**bn.state_dict(), "num_batches_tracked": np.array(5)})
    assert bn.num_batches_tracked == 5 and type(bn.num_batches_tracked) is int
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64


def test_strict_wants_exactly_the_layers_keys():
    ln = fastbn.LayerNorm(3)
    with pytest.raises(ValueError, match=r"^state_dict: missing keys \['bias'\]"):
        ln.load_state_dict({"weight": np.full(3, 2.0)})
    assert ln.gamma.tolist() == [1.0, 1.0, 1.0]               # nothing written
    with pytest.raises(ValueError, match=r"unexpected keys \['scale'\]"):
        ln.load_state_dict({**ln.state_dict(), "scale": 1.0})
    got = ln.load_state_dict({"weight": np.full(3, 2.0), "scale": 1.0}, strict=False)
    assert got.missing_keys == ["bias"] and got.unexpected_keys == ["scale"]
    assert ln.gamma.tolist() == [2.0, 2.0, 2.0]


BAD = [
    ({"weight": np.ones(2)}, ValueError, r"^state_dict\['weight'\]: expected shape \(3,\)"),
    ({"weight": np.ones(3, complex)}, TypeError, r"^state_dict\['weight'\]: expected real"),
    ({"weight": np.ones(3, bool)}, TypeError, r"^state_dict\['weight'\]: expected real"),
    ({"weight": ["a", "b", "c"]}, TypeError, r"^state_dict\['weight'\]"),
    ({"num_batches_tracked": 1.5}, TypeError, r"^state_dict\['num_batches_tracked'\]"),
    ({"num_batches_tracked": -1}, ValueError, r"^state_dict\['num_batches_tracked'\]"),
]


@pytest.mark.parametrize("change, error, match", BAD)
def test_a_bad_value_is_named_and_nothing_is_written(change, error, match):
    bn = fastbn.BatchNorm(3)
    before = {k: np.array(a) for k, a in bn.state_dict().items()}
    sd = {k: np.full_like(a, 4) for k, a in bn.state_dict().items()}   # valid, all changed
    with pytest.raises(error, match=match):
        bn.load_state_dict({**sd, **change})
    for k, a in bn.state_dict().items():
        assert np.array_equal(a, before[k]), k
    with pytest.raises(TypeError, match="^state_dict: expected a mapping"):
        bn.load_state_dict([("weight", np.ones(3))])
    with pytest.raises(TypeError, match="^strict:"):
        bn.load_state_dict(sd, strict=1)


@pytest.mark.parametrize("name", list(LAYERS))
def test_reset_parameters_gives_a_new_layers_state_in_place(name):
    layer, new = _trained(LAYERS[name], 2), LAYERS[name]()
    arrays = layer.state_dict()
    layer.reset_parameters()
    for key, a in layer.state_dict().items():
        assert np.asarray(a).tobytes() == np.asarray(new.state_dict()[key]).tobytes(), key
        assert key == "num_batches_tracked" or a is arrays[key]


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_has_the_mode_switch(name):
    layer = LAYERS[name]()
    assert layer.training is True and layer.eval() is layer and layer.training is False
    assert layer.train() is layer and layer.training is True
    with pytest.raises(TypeError, match="^mode:"):
        layer.train("yes")
