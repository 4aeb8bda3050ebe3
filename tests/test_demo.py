"""The demo (``python -m fastbn.demo``) and its small NumPy network framework.

The layers' backward passes are checked against central finite differences in float64; the
optimizer against its update formula; the ``--quick`` run end to end (it needs the ``demo`` extra:
scikit-learn and matplotlib).
"""
import re

import numpy as np
import pytest

import fastbn
from fastbn.demo import nn


def normal_init(shape, *, dtype, rng):
    """A stand-in weight initializer with the fastbn.init signature (the unit tests do not need
    fastbn.init's laws, only weights of a sensible scale)."""
    return (np.random.default_rng(rng).standard_normal(shape) / np.sqrt(shape[0])).astype(dtype)


def numerical_grad(f, a, h=1e-6):
    """d f() / d a by central differences, perturbing ``a`` in place."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        up = f()
        a[i] = old - h
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def assert_grad(analytic, f, a):
    np.testing.assert_allclose(analytic, numerical_grad(f, a), rtol=1e-6, atol=1e-8)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ---------------------------------------------------------------------------------------------
# gradients against finite differences (float64)

def linear_loss(layer, x, r):
    """L = sum(layer(x) * r): dL/dy = r."""
    return lambda: float((layer.forward(x) * r).sum())


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients(rng, bias):
    layer = nn.Dense(5, 3, init=normal_init, rng=1, bias=bias, dtype=np.float64)
    if bias:
        layer.b[:] = rng.standard_normal(3)
    x = rng.standard_normal((4, 5))
    r = rng.standard_normal((4, 3))
    f = linear_loss(layer, x, r)
    layer.forward(x)
    dx = layer.backward(r)
    assert_grad(dx, f, x)
    assert_grad(layer.dW, f, layer.W)
    if bias:
        assert_grad(layer.db, f, layer.b)
        assert [p for p, _ in layer.parameters()] == [layer.W, layer.b]
    else:
        assert layer.b is None and len(layer.parameters()) == 1


def test_dense_forward_is_affine_and_uses_the_initializer(rng):
    shapes = []

    def init(shape, *, dtype, rng):
        shapes.append(shape)
        return np.arange(np.prod(shape), dtype=dtype).reshape(shape)

    layer = nn.Dense(3, 2, init=init, dtype=np.float64)
    assert shapes == [(3, 2)]               # fastbn.init's (in, out) layout for x @ W
    layer.b[:] = [0.5, -1.0]
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(layer.forward(x), x @ layer.W + layer.b)


def test_dense_rejects_an_initializer_of_the_wrong_shape():
    with pytest.raises(ValueError, match="^init"):
        nn.Dense(3, 2, init=lambda shape, *, dtype, rng: np.zeros((2, 3), dtype))


@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
def test_activation_gradients(rng, activation):
    layer = nn.ACTIVATIONS[activation]()
    x = rng.uniform(-3, 3, (6, 4))
    x[np.abs(x) < 1e-3] = 0.5         # ReLU: no kink within the finite-difference step
    r = rng.standard_normal(x.shape)
    layer.forward(x)
    assert_grad(layer.backward(r), linear_loss(layer, x, r), x)
    assert layer.parameters() == []


def test_activation_values(rng):
    x = np.array([[-800.0, -2.0, 0.0, 3.0, 800.0]])
    np.testing.assert_array_equal(nn.ReLU().forward(x), [[0.0, 0.0, 0.0, 3.0, 800.0]])
    np.testing.assert_allclose(nn.Tanh().forward(x), np.tanh(x))
    with np.errstate(over="raise"):           # no exp overflow for large |x|
        s = nn.Sigmoid().forward(x)
    np.testing.assert_allclose(s[0, 1:4], 1 / (1 + np.exp(-x[0, 1:4])), rtol=1e-15)
    assert s[0, 0] == 0.0 and s[0, -1] == 1.0


def test_softmax_cross_entropy_value_and_gradient(rng):
    logits = rng.standard_normal((5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    loss, dlogits = nn.softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(5), labels]).mean(), rel=1e-14)
    assert_grad(dlogits, lambda: nn.softmax_cross_entropy(logits, labels)[0], logits)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is fine
        loss, dlogits = nn.softmax_cross_entropy(logits, np.array([0, 0]))
    assert loss == pytest.approx(1e4 / 2)                  # sample 2 is wrong by 1e4
    np.testing.assert_allclose(dlogits, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-7)
    assert dlogits.dtype == np.float32


def test_dense_batchnorm_relu_stack_gradients(rng):
    """Every parameter and the input of Dense -> BatchNorm -> ReLU -> Dense -> softmax CE."""
    model = nn.mlp([4, 6, 3], activation="relu", init=normal_init, batch_norm=True, rng=3,
                   dtype=np.float64)
    dense, bn, relu, out = model.layers
    assert (type(bn), type(relu)) == (fastbn.BatchNorm, nn.ReLU) and dense.b is None
    bn.gamma[:] = rng.uniform(0.5, 2.0, 6)
    bn.beta[:] = rng.standard_normal(6)
    x = rng.standard_normal((8, 4))
    labels = rng.integers(0, 3, 8)

    def loss():
        return nn.softmax_cross_entropy(model.forward(x, training=True), labels)[0]

    _, dlogits = nn.softmax_cross_entropy(model.forward(x), labels)
    dx = model.backward(dlogits)
    params = model.parameters()
    assert [p for p, _ in params] == [dense.W, bn.gamma, bn.beta, out.W, out.b]
    for p, g in params:
        assert_grad(g, loss, p)
    assert_grad(dx, loss, x)


# ---------------------------------------------------------------------------------------------
# network assembly, optimizer, training step

@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_layers(batch_norm):
    model = nn.mlp([5, 7, 7, 2], activation="tanh", init=normal_init, batch_norm=batch_norm,
                   rng=0)
    kinds = [type(layer) for layer in model.layers]
    hidden = [nn.Dense, fastbn.BatchNorm, nn.Tanh] if batch_norm else [nn.Dense, nn.Tanh]
    assert kinds == hidden * 2 + [nn.Dense]
    dense = [layer for layer in model.layers if isinstance(layer, nn.Dense)]
    assert [d.W.shape for d in dense] == [(5, 7), (7, 7), (7, 2)]
    assert [d.b is None for d in dense] == [batch_norm, batch_norm, False]
    assert all(d.W.dtype == np.float32 for d in dense)
    assert model.forward(np.ones((3, 5), np.float32)).shape == (3, 2)


def test_mlp_draws_each_layer_from_one_seeded_stream():
    a = nn.mlp([4, 4, 4, 2], activation="relu", init=normal_init, rng=7)
    b = nn.mlp([4, 4, 4, 2], activation="relu", init=normal_init, rng=7)
    wa = [layer.W for layer in a.layers if isinstance(layer, nn.Dense)]
    wb = [layer.W for layer in b.layers if isinstance(layer, nn.Dense)]
    for u, w in zip(wa, wb):
        np.testing.assert_array_equal(u, w)
    assert not np.array_equal(wa[0], wa[1])     # the stream advances between layers


def test_sgd_momentum_update_formula():
    p = np.array([1.0, -2.0, 0.5])
    g1, g2, g3 = np.array([0.1, 0.2, -0.3]), np.array([-1.0, 0.0, 2.0]), np.array([0.5, 0.5, 0.5])
    lr, mu = 0.1, 0.9
    opt = nn.SGD(lr, momentum=mu)
    expected, v = p.copy(), np.zeros(3)
    for g in (g1, g2, g3):
        opt.step([(p, g.copy())])
        v = mu * v + g                 # v_t = mu v_{t-1} + g_t,  p_t = p_{t-1} - lr v_t
        expected = expected - lr * v
        np.testing.assert_allclose(p, expected, rtol=1e-15)
    # closed form after three steps: p0 - lr ((1 + mu + mu^2) g1 + (1 + mu) g2 + g3)
    p0 = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(p, p0 - lr * ((1 + mu + mu**2) * g1 + (1 + mu) * g2 + g3),
                               rtol=1e-14)


def test_sgd_without_momentum_and_parameter_list_check():
    p = np.array([1.0, 2.0])
    opt = nn.SGD(0.5)
    opt.step([(p, np.array([2.0, -2.0]))])
    np.testing.assert_array_equal(p, [0.0, 3.0])
    opt.step([(p, np.array([2.0, -2.0]))])     # no memory of the first gradient
    np.testing.assert_array_equal(p, [-1.0, 4.0])
    with pytest.raises(ValueError, match="^params"):
        opt.step([(p, p), (p, p)])


def test_train_step_clips_all_gradients_with_fastbn_then_updates(rng):
    model = nn.mlp([4, 8, 3], activation="relu", init=normal_init, rng=0, dtype=np.float64)
    x = rng.standard_normal((16, 4)) * 50          # large inputs: large gradients
    labels = rng.integers(0, 3, 16)
    before = [p.copy() for p, _ in model.parameters()]
    lr, max_norm = 0.1, 0.01
    loss, norm = nn.train_step(model, nn.SGD(lr, momentum=0.9), x, labels, max_norm=max_norm)
    grads = [g for _, g in model.parameters()]
    assert norm > max_norm                          # the clip was active ...
    assert fastbn.global_norm(grads) == pytest.approx(max_norm, rel=1e-6)   # ... on all of them
    for b, (p, g) in zip(before, model.parameters()):
        np.testing.assert_allclose(p, b - lr * g, rtol=1e-14)   # first step: v = g
    assert loss == pytest.approx(nn.softmax_cross_entropy(
        nn.mlp([4, 8, 3], activation="relu", init=normal_init, rng=0,
               dtype=np.float64).forward(x), labels)[0], rel=1e-14)


def test_accuracy_uses_inference_mode():
    model = nn.mlp([2, 3, 2], activation="relu", init=normal_init, batch_norm=True, rng=0)
    bn = model.layers[1]
    x = np.ones((4, 2), np.float32)
    acc = nn.accuracy(model, x, np.zeros(4, int))
    assert acc in (0.0, 1.0)                        # identical rows: all right or all wrong
    np.testing.assert_array_equal(bn.running_mean, np.zeros(3, np.float32))  # not updated


# ---------------------------------------------------------------------------------------------
# the experiments and the command

def test_missing_dependency_message():
    from fastbn.demo import require
    with pytest.raises(ImportError, match=r"fastbn.demo needs some-package.*fastbn\[demo\]"):
        require("fastbn_no_such_module", "some-package")


def test_result_summaries():
    from fastbn.demo.experiments import Experiment, Result
    r = Result(Experiment("relu8", "he", "relu", 8, False), [0, 10, 20, 30],
               [0.1, 0.95, 0.85, 0.92])
    assert (r.final_accuracy, r.best_accuracy, r.steps_to_target) == (0.92, 0.95, 10)
    r.test_accuracy = [0.1, 0.2, 0.3, 0.4]
    assert r.steps_to_target is None


def test_experiment_list_has_every_scheme_with_and_without_bn_and_each_study():
    """tanh8 and relu8 with each weight scheme, with and without batch norm; the deep ReLU (30
    layers, xavier and he), deep sigmoid (with and without BN) and high learning-rate studies."""
    from fastbn.demo.experiments import experiments
    runs = experiments()
    names = [e.name for e in runs]
    assert len(set(names)) == len(names)
    for act in ("tanh8", "relu8"):
        for scheme in ("zero", "normal", "xavier", "he"):
            assert f"{act}/{scheme}" in names and f"{act}/{scheme}+bn" in names
    deep = [e for e in runs if e.group == "deep-relu30"]
    assert {e.scheme for e in deep} == {"xavier", "he"} and {e.depth for e in deep} == {30}
    sig = [e for e in runs if e.group == "deep-sigmoid10"]
    assert {e.batch_norm for e in sig} == {False, True}
    assert {e.activation for e in sig} == {"sigmoid"}
    hi = [e for e in runs if e.group == "high-lr"]
    assert {e.batch_norm for e in hi} == {False, True}
    assert all(e.lr > runs[0].lr for e in hi)


def test_training_is_reproducible():
    from fastbn.demo import experiments as ex
    r = np.random.default_rng(0)
    data = ex.Data(r.standard_normal((200, 64)).astype(np.float32), r.integers(0, 10, 200),
                   r.standard_normal((50, 64)).astype(np.float32), r.integers(0, 10, 50))
    exp = ex.Experiment("relu8", "he", "relu", 3, True)
    a = ex.train(exp, data, steps=6, eval_every=2)
    b = ex.train(exp, data, steps=6, eval_every=2)
    assert a.train_loss == b.train_loss and a.test_accuracy == b.test_accuracy
    assert a.eval_steps == [0, 2, 4, 6] and len(a.train_loss) == 6


def test_quick_run_writes_figures_and_a_table_with_every_experiment(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from fastbn.demo import experiments as ex
    from fastbn.demo.__main__ import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in ("accuracy.png", "activations.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    table = (tmp_path / "results.md").read_text()
    for exp in ex.experiments():
        row = re.search(rf"^\| `{re.escape(exp.name)}` \|(.*)\|$", table, re.M)
        assert row, exp.name
        cells = [c.strip() for c in row.group(1).split("|")]
        final, best = float(cells[6]), float(cells[7])
        assert 0.0 <= final <= best <= 1.0
        assert cells[9] in ("yes", "no")
        assert f"{exp.name}:" in printed                     # progress line per run
    for activation in ex.ACTIVATION_STUDY:
        for scheme, bn in ex.ACTIVATION_SCHEMES:
            label = ex.SCHEMES[scheme][0] + (" + BN" if bn else "")
            assert re.search(rf"^\| {activation} \| {re.escape(label)} \|( [0-9.e+-]+ \|){{10}}$",
                             table, re.M), (activation, label)
    assert "accuracy.png" in table and "activations.png" in table
