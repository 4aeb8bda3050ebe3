"""A small NumPy neural-network framework: the way a user would put fastbn into a network.

Every layer has the same three methods:

``forward(x, training=True)``
    Return the output and remember what ``backward`` needs.
``backward(dy)``
    Given dL/d(output) of the last ``forward``, store the gradients of the layer's parameters and
    return dL/d(input).
``parameters()``
    ``[(param, grad), ...]`` for the optimizer, valid after ``backward``.

:class:`fastbn.BatchNorm` already has this interface, so it is used as it is.  Weights are
created by a weight initializer such as ``fastbn.init.he_normal``: a callable
``init(shape, *, dtype, rng)``; the weight of :class:`Dense` has the shape ``(n_in, n_out)``
(``y = x @ W + b``), fastbn.init's default fan layout.  Gradient clipping with
:func:`fastbn.clip_grad_norm` is one call over the list of all gradients, see :func:`train_step`.
"""
import numpy as np

import fastbn


class Dense:
    """Fully connected layer ``y = x @ W + b``, ``W`` of shape ``(n_in, n_out)``.

    Parameters
    ----------
    n_in, n_out : int
    init : callable
        ``init(shape, *, dtype, rng)`` returning the initial ``W``, e.g. ``fastbn.init.he_normal``.
    rng : None, int or numpy.random.Generator
        Passed to ``init``.
    bias : bool, default True
        Learn a bias (zeros at first).  A layer followed by batch norm needs none: the
        normalization removes it and ``beta`` takes its role.
    dtype : float32 or float64
    """

    def __init__(self, n_in, n_out, *, init, rng=None, bias=True, dtype=np.float32):
        self.W = np.ascontiguousarray(init((n_in, n_out), dtype=dtype, rng=rng), dtype=dtype)
        if self.W.shape != (n_in, n_out):
            raise ValueError(f"init: returned shape {self.W.shape}, expected {(n_in, n_out)}")
        self.b = np.zeros(n_out, dtype) if bias else None
        self.dW = self.db = None
        self._x = None

    def forward(self, x, training=True):
        self._x = x
        y = x @ self.W
        if self.b is not None:
            y += self.b
        return y

    def backward(self, dy):
        self.dW = self._x.T @ dy
        if self.b is not None:
            self.db = dy.sum(axis=0)
        return dy @ self.W.T

    def parameters(self):
        if self.b is None:
            return [(self.W, self.dW)]
        return [(self.W, self.dW), (self.b, self.db)]

    def __repr__(self):
        return f"Dense({self.W.shape[0]}, {self.W.shape[1]}, bias={self.b is not None})"


class _Activation:
    """Elementwise nonlinearity without parameters."""

    def parameters(self):
        return []

    def __repr__(self):
        return f"{type(self).__name__}()"


class ReLU(_Activation):
    def forward(self, x, training=True):
        self._mask = x > 0
        return np.where(self._mask, x, x.dtype.type(0))

    def backward(self, dy):
        return np.where(self._mask, dy, dy.dtype.type(0))


class Tanh(_Activation):
    def forward(self, x, training=True):
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy):
        return dy * (1 - self._y * self._y)


class Sigmoid(_Activation):
    def forward(self, x, training=True):
        # 1 / (1 + exp(-x)) written without exp, so that no input overflows
        self._y = 0.5 * (1 + np.tanh(0.5 * x))
        return self._y

    def backward(self, dy):
        return dy * self._y * (1 - self._y)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


class Sequential:
    """Layers applied in order; ``backward`` runs them in reverse."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x, training=True):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    __call__ = forward

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def parameters(self):
        return [pair for layer in self.layers for pair in layer.parameters()]

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}])"


def mlp(sizes, *, activation, init, batch_norm=False, rng=None, dtype=np.float32,
        norm_layer=None):
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` (logits: no final activation).

    Each hidden layer is ``Dense -> activation``, or ``Dense (no bias) -> BatchNorm ->
    activation`` with ``batch_norm`` (normalization before the nonlinearity, as in Ioffe &
    Szegedy 2015).  Every Dense layer, the output layer included, is initialized by ``init``.
    ``norm_layer(n, dtype)`` makes the batch-norm layers (default :class:`fastbn.BatchNorm`; the
    data-parallel demo passes :class:`fastbn.distributed.SyncBatchNorm`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.demo.nn import SGD, accuracy, mlp, train_step
    >>> init = lambda shape, *, dtype, rng: rng.normal(0, 0.1, shape).astype(dtype)
    >>> model = mlp([4, 8, 3], activation="relu", init=init, batch_norm=True, rng=0)
    >>> [type(layer).__name__ for layer in model.layers]
    ['Dense', 'BatchNorm', 'ReLU', 'Dense']
    >>> x = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    >>> labels = np.arange(16) % 3
    >>> loss, norm = train_step(model, SGD(lr=0.1), x, labels, max_norm=1.0)
    >>> loss > 0 and norm > 0
    True
    >>> 0.0 <= accuracy(model, x, labels) <= 1.0
    True
    """
    rng = np.random.default_rng(rng)
    act = ACTIVATIONS[activation]
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Dense(n_in, n_out, init=init, rng=rng, bias=not batch_norm, dtype=dtype))
        if batch_norm:
            layers.append(fastbn.BatchNorm(n_out, dtype=dtype) if norm_layer is None
                          else norm_layer(n_out, dtype))
        layers.append(act())
    layers.append(Dense(sizes[-2], sizes[-1], init=init, rng=rng, dtype=dtype))
    return Sequential(layers)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``, and its gradient.

    Returns
    -------
    loss : float
    dlogits : ndarray like ``logits``
        ``(softmax(logits) - onehot(labels)) / n``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.demo.nn import softmax_cross_entropy
    >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6) == round(float(np.log(4)), 6)    # uniform over 4 classes
    True
    >>> d[0]
    array([-0.375,  0.125,  0.125,  0.125])
    """
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -float(logp[rows, labels].mean(dtype=np.float64))
    dlogits = np.exp(logp)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, dlogits


class SGD:
    """Stochastic gradient descent with momentum (PyTorch's form, no dampening).

    For every parameter ``p`` with gradient ``g``::

        v = momentum * v + g        (v = 0 before the first step)
        p = p - lr * v

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.demo.nn import SGD
    >>> p, g = np.array([1.0]), np.array([0.5])
    >>> opt = SGD(lr=0.1, momentum=0.9)
    >>> opt.step([(p, g)]); opt.step([(p, g)])           # v = 0.5, then 0.9 * 0.5 + 0.5
    >>> p
    array([0.855])
    """

    def __init__(self, lr, momentum=0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self._velocity = None

    def step(self, params):
        """Update ``[(param, grad), ...]`` in place: the same parameters in the same order each step."""
        if self._velocity is None:
            self._velocity = [np.zeros_like(p) for p, _ in params]
        if len(params) != len(self._velocity):
            raise ValueError(f"params: expected the {len(self._velocity)} parameters of the "
                             f"first step, got {len(params)}")
        for (p, g), v in zip(params, self._velocity):
            v *= self.momentum
            v += g
            p -= self.lr * v


def train_step(model, optimizer, x, labels, *, max_norm=None):
    """One step: forward, loss, backward, gradient clipping, update.  Returns (loss, norm).

    ``norm`` is the global 2-norm of all gradients before clipping (from
    :func:`fastbn.clip_grad_norm`, which rescales them in place to at most ``max_norm``), or
    ``None`` without clipping.
    """
    loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
    model.backward(dlogits)
    params = model.parameters()
    norm = None
    if max_norm is not None:
        norm = fastbn.clip_grad_norm([g for _, g in params], max_norm)
    optimizer.step(params)
    return loss, norm


def accuracy(model, x, labels):
    """Fraction of ``x`` classified correctly, in inference mode."""
    return float((model.forward(x, training=False).argmax(axis=1) == labels).mean())
