"""The experiments of ``python -m fastbn.demo``: what is trained, how, and what is measured.

Data: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), split once into 1297 training
and 500 test images (stratified, ``random_state=0``), each pixel standardized with the training
set's mean and standard deviation.  Every network is an MLP ``64 -> width x depth -> 10``
(:func:`fastbn.demo.nn.mlp`) trained with mini-batches of 64, SGD with momentum 0.9 and every
gradient clipped to a global norm of 5 by :func:`fastbn.clip_grad_norm`.  The same seed is used
for every run, so runs that differ only in the scale of their initializer start from the same
random directions and see the same batches.

A run has *diverged* when its training loss became non-finite or rose above
``DIVERGENCE_FACTOR`` times its value on the first batch: the updates overshot.  (Clipping keeps
the numbers finite, so a diverged ReLU network usually ends with dead units at chance level rather
than with NaN.)
"""
import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from fastbn.demo import require
from fastbn.demo.nn import ACTIVATIONS, SGD, accuracy, mlp, train_step

SEED = 0
BATCH_SIZE = 64
MOMENTUM = 0.9
MAX_NORM = 5.0
BASE_LR = 0.01
HIGH_LR = 0.5
TARGET_ACCURACY = 0.90
DIVERGENCE_FACTOR = 4.0

#: initialization schemes: name -> (label, fastbn.init function, keyword arguments)
SCHEMES = {
    "zero": ("zero", "zeros", {}),
    "normal": ("N(0,1)", "normal", {"mean": 0.0, "std": 1.0}),
    "xavier": ("Xavier", "glorot_uniform", {}),
    "he": ("He", "he_normal", {}),
}


def initializer(scheme):
    """The weight initializer of ``scheme`` from :mod:`fastbn.init`: ``f(shape, *, dtype, rng)``."""
    from fastbn import init
    _, name, kwargs = SCHEMES[scheme]
    return functools.partial(getattr(init, name), **kwargs)


@dataclass(frozen=True)
class Experiment:
    """One training run: a row of the table and a curve of the figure."""
    group: str          # the figure panel, a key of GROUPS
    scheme: str         # a key of SCHEMES
    activation: str     # relu, tanh or sigmoid
    depth: int          # hidden layers
    batch_norm: bool
    lr: float = BASE_LR
    steps: int = 400
    width: int = 64

    @property
    def name(self):
        return f"{self.group}/{self.scheme}{'+bn' if self.batch_norm else ''}"

    @property
    def label(self):
        return SCHEMES[self.scheme][0] + (" + BN" if self.batch_norm else "")


#: figure panels: group -> title
GROUPS = {
    "tanh8": "tanh, 8 hidden layers: initialization x batch norm",
    "relu8": "ReLU, 8 hidden layers: initialization x batch norm",
    "deep-relu30": "ReLU, 30 hidden layers, no BN: Xavier vs He",
    "deep-sigmoid10": "sigmoid, 10 hidden layers, Xavier: BN rescues",
    "high-lr": f"ReLU, 8 layers, He, lr {HIGH_LR:g} ({HIGH_LR / BASE_LR:g}x): BN trains",
}


def experiments():
    """Every experiment, in the order of the table."""
    runs = [Experiment(f"{act}8", scheme, act, 8, bn)
            for act in ("tanh", "relu") for scheme in SCHEMES for bn in (False, True)]
    runs += [Experiment("deep-relu30", scheme, "relu", 30, False, steps=500)
             for scheme in ("xavier", "he")]
    runs += [Experiment("deep-sigmoid10", "xavier", "sigmoid", 10, bn) for bn in (False, True)]
    runs += [Experiment("high-lr", "he", "relu", 8, bn, lr=HIGH_LR) for bn in (False, True)]
    return runs


@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(dtype=np.float32):
    """The digits split described in the module docstring."""
    datasets = require("sklearn.datasets", "scikit-learn")
    model_selection = require("sklearn.model_selection", "scikit-learn")
    x, y = datasets.load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=500, random_state=SEED, stratify=y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0          # pixels that are blank in every training image
    return Data(((x_train - mean) / std).astype(dtype), y_train,
                ((x_test - mean) / std).astype(dtype), y_test)


@dataclass
class Result:
    experiment: Experiment
    eval_steps: list = field(default_factory=list)     # steps at which the test set was scored
    test_accuracy: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)     # one per step
    diverged: bool = False
    seconds: float = 0.0

    @property
    def final_accuracy(self):
        return self.test_accuracy[-1]

    @property
    def best_accuracy(self):
        return max(self.test_accuracy)

    @property
    def steps_to_target(self):
        """First evaluated step with test accuracy >= TARGET_ACCURACY, or None."""
        return next((s for s, a in zip(self.eval_steps, self.test_accuracy)
                     if a >= TARGET_ACCURACY), None)


def _batches(n, batch_size, rng):
    """Endless mini-batch indices: a fresh permutation each epoch, the remainder dropped."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def train(exp, data, *, steps=None, eval_every=10, log=None):
    """Train ``exp`` from scratch; test accuracy at step 0 and every ``eval_every`` steps.

    ``steps`` overrides ``exp.steps`` (the quick run).  ``log(text)`` receives progress lines.
    Training stops early once the loss is non-finite.
    """
    steps = exp.steps if steps is None else steps
    start = time.perf_counter()
    model = mlp([data.x_train.shape[1]] + [exp.width] * exp.depth + [10],
                activation=exp.activation, init=initializer(exp.scheme),
                batch_norm=exp.batch_norm, rng=np.random.default_rng([SEED, 1]))
    optimizer = SGD(exp.lr, momentum=MOMENTUM)
    batches = _batches(len(data.y_train), BATCH_SIZE, np.random.default_rng([SEED, 2]))
    res = Result(exp, [0], [accuracy(model, data.x_test, data.y_test)])
    report_every = max(1, steps // 4)
    for step in range(1, steps + 1):
        idx = next(batches)
        loss, _ = train_step(model, optimizer, data.x_train[idx], data.y_train[idx],
                             max_norm=MAX_NORM)
        res.train_loss.append(loss)
        if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * res.train_loss[0]:
            res.diverged = True
        if not math.isfinite(loss):
            break
        if step % eval_every == 0 or step == steps:
            res.eval_steps.append(step)
            res.test_accuracy.append(accuracy(model, data.x_test, data.y_test))
        if log and step % report_every == 0:
            log(f"    step {step:4d}/{steps}  loss {loss:10.4g}  "
                f"test acc {res.test_accuracy[-1]:.3f}")
    if not math.isfinite(res.train_loss[-1]):   # score the broken model once more
        res.eval_steps.append(len(res.train_loss))
        res.test_accuracy.append(accuracy(model, data.x_test, data.y_test))
    res.seconds = time.perf_counter() - start
    return res


#: activation-statistics figure: one panel per activation, one line per (scheme, batch norm)
ACTIVATION_STUDY = ("tanh", "relu")
ACTIVATION_SCHEMES = [("zero", False), ("normal", False), ("xavier", False), ("he", False),
                      ("normal", True)]


def activation_std(data, *, depth=10, width=256):
    """Per-layer standard deviation of the activations at initialization (Glorot & Bengio 2010).

    For each activation of ``ACTIVATION_STUDY`` and each (scheme, batch norm) of
    ``ACTIVATION_SCHEMES``, a fresh ``64 -> width x depth`` network is run forward (training
    mode) on the whole training set; returns ``{(activation, scheme, bn): [std of the output of
    hidden layer 1, ..., depth]}`` (float64 statistics of the float32 activations).
    """
    out = {}
    for activation in ACTIVATION_STUDY:
        for scheme, bn in ACTIVATION_SCHEMES:
            model = mlp([data.x_train.shape[1]] + [width] * depth + [10], activation=activation,
                        init=initializer(scheme), batch_norm=bn,
                        rng=np.random.default_rng([SEED, 1]))
            h, stds = data.x_train, []
            for layer in model.layers[:-1]:
                h = layer.forward(h, training=True)
                if isinstance(layer, ACTIVATIONS[activation]):
                    stds.append(float(h.std(dtype=np.float64)))
            out[(activation, scheme, bn)] = stds
    return out

