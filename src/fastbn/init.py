"""Weight initializers: fan-based scaling (Glorot/Xavier, He/Kaiming, LeCun, Keras' variance
scaling), orthogonal matrices, and the uniform / normal / truncated-normal laws beneath them.

Why: zero init learns nothing (every unit computes the same feature); N(0, 1) saturates
tanh/sigmoid or explodes; the fan-based rules keep the variance of activations (Glorot, for
tanh/sigmoid) or of ReLU outputs (He) from layer to layer.

Random values come from a counter-based generator in C (Philox4x32-10, see
``fastbn._random``): a value depends only on the seed and its position (C order), so results are
the same for any thread count, any instruction set, and with or without ``out``.  float32 and
float64 are generated natively; float16 and bfloat16 (``ml_dtypes.bfloat16``, an optional
dependency) are the float32 values of the same stream rounded once (to nearest even), except
that the truncated normal clamps to its interval's ends rounded inwards in the half type, so that
rounding cannot leave the interval; ``orthogonal`` rounds its float64 matrix once to any dtype.
``rng`` may be None (fresh OS entropy), an int seed, or a ``numpy.random.Generator`` (Scientific
Python SPEC 7), which is advanced by one draw of two 64-bit words per call.

A shape with a zero dimension gives an empty array (and leaves ``out`` as it is), as PyTorch's
and Keras' initializers do; its arguments are still checked, and a Generator still advanced.

Shapes follow the ``x @ W`` convention by default: (in, out) for dense layers and
(kh, kw, in, out) for convolutions (``in_axis=-2, out_axis=-1``); PyTorch's (out, in, kh, kw) is
``in_axis=1, out_axis=0``.
"""
import functools
import inspect
import math
import numbers

import numpy as np

from fastbn import _config, _half, _random
from fastbn import _validation as v

_config._register(_random)

__all__ = [
    "compute_fans", "calculate_gain", "zeros", "ones", "constant", "uniform", "normal",
    "truncated_normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "variance_scaling", "orthogonal", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal",
]


def __dir__():
    # dir() and tab completion list the API, not the modules imported to build it (PEP 562).
    # Hiding them here keeps the code in the usual np/math idiom instead of _np/_math aliases.
    return sorted(__all__ + [n for n in globals() if n.startswith("__")])

# Keras: std of N(0, 1) truncated to [-2, 2]; dividing by it makes the truncated variance 1.
TRUNCATION_STD = 0.87962566103423978


# ---- argument checks ------------------------------------------------------------------------

def _shape(shape, name="shape"):
    """A tuple of non-negative Python ints (an int means a 1-d shape)."""
    if type(shape) is tuple and all(type(d) is int and d >= 0 for d in shape):
        return shape                      # the common case, cheaply
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name}: expected a tuple of integers, got {type(shape).__name__}")
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (numbers.Integral, np.integer)):
            raise TypeError(f"{name}: expected integer dimensions, got {d!r} at position {i}")
        if d < 0:
            raise ValueError(f"{name}: expected non-negative dimensions, got {d} at position {i}")
        dims.append(int(d))
    return tuple(dims)


def _dtype(dtype):
    try:
        dt = _half.requested(dtype, "dtype")
    except TypeError as e:
        if str(e).startswith("dtype:"):      # bfloat16 without ml_dtypes
            raise
        raise TypeError(f"dtype: expected {_half.EXPECTED}, got {dtype!r}") from None
    if dt not in v.FLOAT_DTYPES and _half.kind(dt, "dtype") is None:
        raise TypeError(f"dtype: expected {_half.EXPECTED}, got {dt}")
    return dt


def _compute(dtype):
    """The dtype the kernels compute in: float32 for the half types, else ``dtype`` itself."""
    return dtype if dtype in v.FLOAT_DTYPES else np.dtype(np.float32)


def _finite_in(x, dtype):
    """Whether the float ``x`` rounds (through float64) to a finite value of ``dtype``."""
    limit = _INF_FROM.get(dtype)
    if limit is None:
        limit = _INF_FROM[dtype] = _least_rounding_to_inf(dtype)
    return abs(x) < limit                 # False for NaN


_INF_FROM = {}    # dtype -> the least float64 that rounds to infinity in it (a search per dtype)


def _least_rounding_to_inf(dtype):
    """The least positive float64 whose conversion to ``dtype`` is infinite (inf for float64):
    a bisection over float64 bit patterns, which order the positive floats."""
    def inf_in(bits):
        with np.errstate(over="ignore"):
            return bool(np.isinf(np.array([bits], np.uint64).view(np.float64).astype(dtype)[0]))
    lo, hi = 0, int(np.array([np.inf]).view(np.uint64)[0])    # inf_in(lo) false, inf_in(hi) true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if inf_in(mid) else (mid, hi)
    return float(np.array([hi], np.uint64).view(np.float64)[0])


def _choice(value, name, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def _check_rng(rng):
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (numbers.Integral, np.integer)):
        raise TypeError(f"rng: expected None, an int seed or a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    if rng < 0:
        raise ValueError(f"rng: expected a non-negative seed, got {rng}")
    return int(rng)


@functools.lru_cache(maxsize=256)
def _seed_sequence_words(seed):
    # SeedSequence costs ~20 us, most of a small initializer's call; its words depend on seed alone
    return tuple(int(w) for w in np.random.SeedSequence(seed).generate_state(4, dtype=np.uint32))


def _seed_words(rng):
    """The Philox stream (key0, key1, stream0, stream1) of ``rng``, as 4 uint32.

    An int seed goes through ``numpy.random.SeedSequence`` (well-mixed: nearby seeds give
    unrelated streams); a Generator is advanced by drawing two uint64; None draws from a fresh
    ``default_rng()`` (OS entropy).
    """
    if isinstance(rng, int):
        return np.array(_seed_sequence_words(rng), np.uint32)
    gen = np.random.default_rng() if rng is None else rng
    words = gen.integers(0, 2**64, size=2, dtype=np.uint64, endpoint=False)
    return np.ascontiguousarray(words).view(np.uint32).copy()


def _target(shape, dtype, out):
    """Validated (shape, dtype, out); ``out`` must match exactly, in either byte order."""
    shape, dtype = _shape(shape), _dtype(dtype)
    if math.prod(shape) * dtype.itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"shape: {shape} of {dtype} exceeds the largest array size "
                         f"({np.iinfo(np.intp).max} bytes)")
    if out is not None:
        # A byte-swapped out ('>f4' here) holds values of dtype: accepted, and filled through a
        # native buffer (_buffer), since the kernels write native floats only.
        swapped = isinstance(out, np.ndarray) and v.native_dtype(out.dtype) == dtype
        v.output(out, "out", shape, out.dtype if swapped else dtype)
    return shape, dtype, out


def _deliver(buf, out):
    if out is not None and buf is not out:
        if not v.same_view(buf, out):
            np.copyto(out, buf)
        return out
    return buf


def _buffer(shape, dtype, out):
    """Where the kernel writes: ``out`` itself if it is C-contiguous and native (a subclass, such
    as np.matrix, as a plain view of it), else a new array."""
    if out is not None and v.kernel_ready(out):
        return v.plain(out)
    return np.empty(shape, dtype=dtype)


def _fill(law, params, shape, dtype, rng, out):
    """Validate the common arguments, then fill with ``law`` in one kernel call."""
    buf = _buffer(shape, dtype, out)
    seed = _seed_words(rng)          # advances a Generator only once everything is valid
    if buf.size:
        half = None if dtype in v.FLOAT_DTYPES else _half.kind(dtype, "dtype")
        if half is None:
            _random.fill(buf.reshape(-1), law, seed, params, _config.get_num_threads())
        else:   # handed over as its bits: bfloat16 has no buffer-protocol format
            _random.fill_half(buf.reshape(-1).view(np.uint16), half, law, seed, params,
                              _config.get_num_threads())
    return _deliver(buf, out)


# ---- fans and gains -------------------------------------------------------------------------

def compute_fans(shape, *, in_axis=-2, out_axis=-1):
    """Fan-in and fan-out of a weight of ``shape``.

    ``fan_in = shape[in_axis] * receptive``, ``fan_out = shape[out_axis] * receptive``, where
    ``receptive`` is the product of all other axes (the kernel window of a convolution).  A 1-d
    shape (a bias) has ``fan_in = fan_out = n``.

    Parameters
    ----------
    shape : tuple of int
        At least 1-d.  Default layout (in, out) or (kh, kw, in, out); PyTorch's
        (out, in, kh, kw) is ``in_axis=1, out_axis=0``.
    in_axis, out_axis : int
        Different axes of ``shape`` (ignored for 1-d shapes).

    Returns
    -------
    (int, int)
        ``(fan_in, fan_out)``.

    Examples
    --------
    >>> from fastbn.init import compute_fans
    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> compute_fans((32, 16, 3, 3), in_axis=1, out_axis=0)
    (144, 288)
    """
    shape = _shape(shape)
    if len(shape) == 0:
        raise ValueError("shape: expected at least 1 dimension to compute fans, got a 0-d shape")
    if len(shape) == 1:
        v.integer(in_axis, "in_axis"), v.integer(out_axis, "out_axis")
        return shape[0], shape[0]
    i = v.normalize_axis(in_axis, len(shape), "in_axis")
    o = v.normalize_axis(out_axis, len(shape), "out_axis")
    if i == o:
        raise ValueError(f"out_axis: must differ from in_axis (both are axis {i})")
    receptive = math.prod(d for k, d in enumerate(shape) if k not in (i, o))
    return shape[i] * receptive, shape[o] * receptive


def _fan(shape, mode, in_axis, out_axis):
    fan_in, fan_out = compute_fans(shape, in_axis=in_axis, out_axis=out_axis)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    # A fan of 0 means an empty weight: nothing is drawn, so any scale does (Keras takes
    # max(1, fan); PyTorch's initializers return an empty tensor as it is).
    return fan if fan else 1


_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose1d": 1.0,
          "conv_transpose2d": 1.0, "conv_transpose3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3,
          "relu": math.sqrt(2.0), "leaky_relu": None, "selu": 3.0 / 4}


# ---- shared numpydoc entries ----------------------------------------------------------------

_PARAMS = {
    "shape": "shape : int or tuple of int\n    The weight's shape (non-negative integers).",
    "value": "value : float\n    The value of every element.",
    "mean": "mean : float, default 0.0\n    Mean of the normal law.",
    "std": "std : float, default 1.0\n    Standard deviation of the normal law, ``>= 0``.",
    "gain": "gain : float, default 1.0\n    Multiplies the standard deviation (``>= 0``).",
    "a_he": ("a : float, default 0.0\n    Negative slope of a leaky ReLU, used by "
             "``calculate_gain(nonlinearity, a)``."),
    "mode_he": ("mode : {'fan_in', 'fan_out'}, default 'fan_in'\n    Preserve the variance of the "
                "forward ('fan_in') or of the backward pass ('fan_out')."),
    "nonlinearity_he": ("nonlinearity : str, default 'relu'\n    The activation after the layer "
                        "(see :func:`calculate_gain`)."),
    "gain_he": ("gain : float, optional\n    Overrides ``calculate_gain(nonlinearity, a)`` when "
                "given."),
    "scale": "scale : float, default 1.0\n    Target variance times the fan (``> 0``).",
    "mode_vs": ("mode : {'fan_in', 'fan_out', 'fan_avg'}, default 'fan_in'\n    Which fan "
                "divides ``scale``."),
    "distribution": ("distribution : {'truncated_normal', 'normal', 'uniform'}, default "
                     "'truncated_normal'\n    The law of the values."),
    "in_axis": ("in_axis : int, default -2\n    Axis of the input units; all axes but "
                "``in_axis`` and ``out_axis`` form the receptive field."),
    "out_axis": "out_axis : int, default -1\n    Axis of the output units.",
    "dtype": ("dtype : float32, float64, float16 or bfloat16, default float32\n    float32 and "
              "float64 are generated natively; float16 and bfloat16 (``ml_dtypes``) are the\n"
              "    float32 values rounded once (see the module docstring)."),
    "rng": ("rng : None, int or numpy.random.Generator\n    The seed: None for fresh entropy, "
            "an int, or a Generator (advanced\n    deterministically, and only if the call "
            "succeeds)."),
    "out": ("out : ndarray, optional\n    Filled in place and returned: the same shape and dtype, "
            "writeable (any strides,\n    either byte order: a byte-swapped ``out`` gets the "
            "bits a native one would)."),
    "nonlinearity": ("nonlinearity : str\n    'linear', 'conv1d', 'conv2d', 'conv3d', "
                     "'conv_transpose1d/2d/3d', 'sigmoid', 'tanh', 'relu', 'leaky_relu' or "
                     "'selu'."),
    "param": "param : float, optional\n    The negative slope of 'leaky_relu' (default 0.01).",
}
_RETURNS_WEIGHT = "ndarray\n    A new array of ``shape`` and ``dtype``, or ``out`` filled in place."


def _document(*names, returns=_RETURNS_WEIGHT):
    """Insert numpydoc Parameters (from _PARAMS) and Returns sections before Examples."""
    def decorate(fn):
        params = "\n".join(_PARAMS[n] for n in names)
        block = f"Parameters\n----------\n{params}\n\nReturns\n-------\n{returns}\n\n"
        doc = inspect.cleandoc(fn.__doc__)
        fn.__doc__ = doc.replace("Examples\n--------", block + "Examples\n--------", 1)
        return fn
    return decorate


@_document("nonlinearity", "param", returns="float\n    The gain.")
def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's values).

    linear, conv1d/2d/3d (and transposed), sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope**2)) with ``param`` the negative slope (default 0.01);
    selu: 3/4.

    Examples
    --------
    >>> from fastbn.init import calculate_gain
    >>> calculate_gain("tanh")
    1.6666666666666667
    >>> round(calculate_gain("leaky_relu", 0.2), 6)
    1.38675
    """
    _choice(nonlinearity, "nonlinearity", tuple(_GAINS))
    if nonlinearity != "leaky_relu":
        return _GAINS[nonlinearity]
    slope = 0.01 if param is None else v.real(param, "param")
    return math.sqrt(2.0 / (1.0 + slope * slope))


# ---- constant laws --------------------------------------------------------------------------

def _const(value, shape, dtype, rng, out):
    shape, dtype, out = _target(shape, dtype, out)
    _check_rng(rng)
    if not _finite_in(value, dtype):
        raise ValueError(f"value: {value!r} overflows {dtype}")
    if out is None:
        return np.full(shape, value, dtype=dtype)
    out.fill(value)
    return out


@_document("shape", "dtype", "rng", "out")
def zeros(shape, *, dtype=np.float32, rng=None, out=None):
    """All zeros.  (Every unit then learns the same feature: use it for biases.)

    Examples
    --------
    >>> from fastbn.init import zeros
    >>> zeros((2, 2))
    array([[0., 0.],
           [0., 0.]], dtype=float32)
    """
    return _const(0.0, shape, dtype, rng, out)


@_document("shape", "dtype", "rng", "out")
def ones(shape, *, dtype=np.float32, rng=None, out=None):
    """All ones (e.g. the gamma of a batch norm).

    Examples
    --------
    >>> from fastbn.init import ones
    >>> ones(3, dtype="float64")
    array([1., 1., 1.])
    """
    return _const(1.0, shape, dtype, rng, out)


@_document("shape", "value", "dtype", "rng", "out")
def constant(shape, value, *, dtype=np.float32, rng=None, out=None):
    """All ``value``.

    Examples
    --------
    >>> from fastbn.init import constant
    >>> constant((2,), 0.5)
    array([0.5, 0.5], dtype=float32)
    """
    value = v.real(value, "value")
    return _const(value, shape, dtype, rng, out)


# ---- random laws ----------------------------------------------------------------------------

def uniform(shape, low=0.0, high=1.0, *, dtype=np.float32, rng=None, out=None):
    """Uniform on [low, high): ``low + (high - low) * u`` with 24 (float32) or 53 (float64)
    random bits per value, computed in ``dtype`` and clamped to [low, high] (rounding alone can
    reach ``high``).

    Parameters
    ----------
    shape : tuple of int
    low, high : float
        Finite, ``low <= high``, ``high - low`` finite in ``dtype``.
    dtype : float32, float64, float16 or bfloat16
        float16 and bfloat16 (``ml_dtypes``): the float32 values rounded once, so within
        [low, high] rounded to float32 and then to ``dtype``.
    rng : None, int or numpy.random.Generator
    out : ndarray, optional
        Filled in place and returned; its shape and dtype must match (either byte order: a
        byte-swapped ``out`` gets the bits a native one would).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.init import uniform
    >>> w = uniform((1000,), -1.0, 1.0, rng=0)
    >>> bool(np.all((w >= -1) & (w <= 1)))
    True
    >>> np.array_equal(w, uniform((1000,), -1.0, 1.0, rng=0))
    True
    """
    low, high = v.real(low, "low"), v.real(high, "high")
    shape, dtype, out = _target(shape, dtype, out)
    rng = _check_rng(rng)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"low: expected finite bounds, got low={low!r}, high={high!r}")
    if low > high:
        raise ValueError(f"low: expected low <= high, got low={low!r} > high={high!r}")
    if not _finite_in(high - low, _compute(dtype)) or not _finite_in(low, dtype) \
            or not _finite_in(high, dtype):
        raise ValueError(f"high: high - low = {high - low!r} overflows {dtype}")
    return _fill("uniform", (low, high), shape, dtype, rng, out)


@_document("shape", "mean", "std", "dtype", "rng", "out")
def normal(shape, mean=0.0, std=1.0, *, dtype=np.float32, rng=None, out=None):
    """Normal N(mean, std**2), by the Box-Muller transform computed in ``dtype``.

    The radius uses 32 (float32) or 53 (float64) random bits, so values reach 6.66 (float32,
    float16, bfloat16) or 8.57 (float64) standard deviations; that reach from ``mean`` must stay
    within the dtype's range (else a ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.init import normal
    >>> w = normal((100000,), 0.0, 2.0, rng=1)
    >>> bool(abs(w.std() - 2.0) < 0.05)
    True
    """
    mean, std = v.real(mean, "mean"), v.real(std, "std")
    shape, dtype, out = _target(shape, dtype, out)
    rng = _check_rng(rng)
    if not math.isfinite(mean):
        raise ValueError(f"mean: expected a finite number, got {mean!r}")
    if not (0.0 <= std < math.inf):
        raise ValueError(f"std: expected a finite number >= 0, got {std!r}")
    reach = _REACH64 if dtype == np.float64 else _REACH32
    if not _finite_in(abs(mean) + reach * std, dtype):
        raise ValueError(f"std: values up to {reach} std from the mean overflow {dtype} "
                         f"(mean={mean!r}, std={std!r})")
    return _fill("normal", (mean, std), shape, dtype, rng, out)


# The largest |z| of the float32 Box-Muller stream, sqrt(-2 log 2^-32) = 6.6604 (rounded up),
# and of the float64 one, sqrt(-2 log 2^-53) = 8.5712
_REACH32 = 6.67
_REACH64 = 8.58


def _phi_parts(a, b):
    """(Phi(a), 1 - Phi(b), Phi(b) - Phi(a)), each with full relative precision."""
    pa = 0.5 * math.erfc(-a / math.sqrt(2.0))
    qb = 0.5 * math.erfc(b / math.sqrt(2.0))
    if a >= 0:          # both in the upper tail: Q(a) - Q(b)
        w = 0.5 * math.erfc(a / math.sqrt(2.0)) - qb
    elif b <= 0:        # both in the lower tail
        w = 0.5 * math.erfc(-b / math.sqrt(2.0)) - pa
    else:
        w = 1.0 - pa - qb
    return pa, qb, w


def _inward(x, dtype, up):
    """``x`` rounded to ``dtype`` towards the inside of an interval (up for a lower end)."""
    t = dtype.type(x)
    if up and float(t) < x:
        t = np.nextafter(t, dtype.type(np.inf))
    if not up and float(t) > x:
        t = np.nextafter(t, dtype.type(-np.inf))
    return float(t)


def truncated_normal(shape, mean=0.0, std=1.0, a=-2.0, b=2.0, *, dtype=np.float32, rng=None,
                     out=None):
    """The normal law N(mean, std**2) restricted to [mean + a*std, mean + b*std].

    Exactly that law (no clamping of mass to the ends, no rejection loop): the inverse CDF of a
    uniform on [Phi(a), Phi(b)], both tails computed through the lower tail so that intervals
    far out keep full precision.  ``a`` and ``b`` are in units of ``std`` (Keras' and Flax's
    rule, default [-2, 2]; PyTorch's ``trunc_normal_`` takes absolute bounds instead).

    Parameters
    ----------
    shape : int or tuple of int
        The weight's shape (non-negative integers).
    mean : float, default 0.0
        Mean of the normal law before truncation.
    std : float, default 1.0
        Standard deviation of the normal law before truncation, ``>= 0``.
    a, b : float, defaults -2.0 and 2.0
        Finite, ``a < b``; the interval must hold probability mass representable in ``dtype``
        (about ``abs(a), abs(b) < 13`` for float32, < 37 for float64 on the far side).
    dtype : float32, float64, float16 or bfloat16, default float32
        float32 and float64 are generated natively; float16 and bfloat16 (``ml_dtypes``) are
        the float32 values rounded once to ``dtype`` and clamped to the interval's ends
        rounded inwards in ``dtype`` (so every value lies in [mean + a*std, mean + b*std]).
    rng : None, int or numpy.random.Generator
        The seed: None for fresh entropy, an int, or a Generator (advanced deterministically,
        and only if the call succeeds).
    out : ndarray, optional
        Filled in place and returned: the same shape and dtype, writeable (any strides, either
        byte order: a byte-swapped ``out`` gets the bits a native one would).

    Returns
    -------
    ndarray
        A new array of ``shape`` and ``dtype``, or ``out`` filled in place.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.init import truncated_normal
    >>> w = truncated_normal((10000,), 1.0, 0.5, rng=2)
    >>> bool(w.min() >= 0.0 and w.max() <= 2.0)
    True
    """
    mean, std = v.real(mean, "mean"), v.real(std, "std")
    a, b = v.real(a, "a"), v.real(b, "b")
    shape, dtype, out = _target(shape, dtype, out)
    rng = _check_rng(rng)
    if not math.isfinite(mean):
        raise ValueError(f"mean: expected a finite number, got {mean!r}")
    if not (0.0 <= std < math.inf):
        raise ValueError(f"std: expected a finite number >= 0, got {std!r}")
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"a: expected finite bounds, got a={a!r}, b={b!r}")
    if a >= b:
        raise ValueError(f"a: expected a < b, got a={a!r} >= b={b!r}")
    pa, qb, w = _phi_parts(a, b)
    calc = _compute(dtype)
    tiny = float(np.finfo(calc).tiny) * 2.0**30
    if max(pa + w, qb + w) < tiny or w <= tiny * 2.0**-30:
        raise ValueError(f"a: the interval [{a!r}, {b!r}] (in std units) holds too little "
                         f"probability mass for {dtype}")
    if not (_finite_in(mean + a * std, dtype) and _finite_in(mean + b * std, dtype)):
        raise ValueError(f"std: the interval [mean + a*std, mean + b*std] = "
                         f"[{mean + a * std!r}, {mean + b * std!r}] overflows {dtype}")
    # The ends rounded inwards in dtype itself: a half-type value then lies in [lo, hi] too
    # (rounding a float32 in [lo, hi] to the half type cannot cross ends it holds exactly).
    lo, hi = _inward(mean + a * std, dtype, True), _inward(mean + b * std, dtype, False)
    if lo > hi:   # std so small that the interval holds no value of dtype: its nearest one
        lo = hi = float(dtype.type(mean + 0.5 * (a + b) * std))
    return _fill("truncnorm", (mean, std, pa, qb, w, lo, hi), shape, dtype, rng, out)


# ---- fan-based initializers -----------------------------------------------------------------

def _scaled(shape, distribution, std, dtype, rng, out):
    """Zero-mean law of standard deviation ``std``: 'uniform' (limit sqrt(3) std), 'normal',
    or 'truncated_normal' (at 2 std, rescaled so that the variance is std**2)."""
    if distribution == "uniform":
        limit = math.sqrt(3.0) * std
        return uniform(shape, -limit, limit, dtype=dtype, rng=rng, out=out)
    if distribution == "normal":
        return normal(shape, 0.0, std, dtype=dtype, rng=rng, out=out)
    return truncated_normal(shape, 0.0, std / TRUNCATION_STD, -2.0, 2.0, dtype=dtype, rng=rng,
                            out=out)


def _gain(gain):
    gain = v.real(gain, "gain")
    if not (0.0 <= gain < math.inf):
        raise ValueError(f"gain: expected a finite number >= 0, got {gain!r}")
    return gain


@_document("shape", "gain", "in_axis", "out_axis", "dtype", "rng", "out")
def glorot_uniform(shape, gain=1.0, *, in_axis=-2, out_axis=-1, dtype=np.float32, rng=None,
                   out=None):
    """Glorot & Bengio (2010): uniform on [-a, a], a = gain * sqrt(6 / (fan_in + fan_out)).

    Keeps the variance of activations and gradients for tanh/sigmoid networks.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.init import glorot_uniform
    >>> w = glorot_uniform((256, 128), rng=0)
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 384))
    True
    """
    gain = _gain(gain)
    std = gain * math.sqrt(1.0 / _fan(_shape(shape), "fan_avg", in_axis, out_axis))
    return _scaled(shape, "uniform", std, dtype, rng, out)


@_document("shape", "gain", "in_axis", "out_axis", "dtype", "rng", "out")
def glorot_normal(shape, gain=1.0, *, in_axis=-2, out_axis=-1, dtype=np.float32, rng=None,
                  out=None):
    """Glorot & Bengio (2010): N(0, sigma**2), sigma = gain * sqrt(2 / (fan_in + fan_out))
    (untruncated).

    Examples
    --------
    >>> from fastbn.init import glorot_normal
    >>> glorot_normal((3, 3, 16, 32), rng=0).shape
    (3, 3, 16, 32)
    """
    gain = _gain(gain)
    std = gain * math.sqrt(1.0 / _fan(_shape(shape), "fan_avg", in_axis, out_axis))
    return _scaled(shape, "normal", std, dtype, rng, out)


def _he_std(shape, a, mode, nonlinearity, gain, in_axis, out_axis):
    _choice(mode, "mode", ("fan_in", "fan_out"))
    a = v.real(a, "a")
    g = calculate_gain(nonlinearity, a)
    if gain is not None:
        g = _gain(gain)
    return g / math.sqrt(_fan(_shape(shape), mode, in_axis, out_axis))


@_document("shape", "a_he", "mode_he", "nonlinearity_he", "gain_he", "in_axis", "out_axis", "dtype", "rng", "out")
def he_uniform(shape, a=0.0, mode="fan_in", nonlinearity="relu", *, gain=None, in_axis=-2,
               out_axis=-1, dtype=np.float32, rng=None, out=None):
    """He et al. (2015): uniform on [-bound, bound], bound = gain * sqrt(3 / fan), with
    ``gain = calculate_gain(nonlinearity, a)`` unless given (sqrt(2) for ReLU: bound =
    sqrt(6 / fan_in)).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.init import he_uniform
    >>> w = he_uniform((512, 256), rng=0)
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 512))
    True
    """
    std = _he_std(shape, a, mode, nonlinearity, gain, in_axis, out_axis)
    return _scaled(shape, "uniform", std, dtype, rng, out)


@_document("shape", "a_he", "mode_he", "nonlinearity_he", "gain_he", "in_axis", "out_axis", "dtype", "rng", "out")
def he_normal(shape, a=0.0, mode="fan_in", nonlinearity="relu", *, gain=None, in_axis=-2,
              out_axis=-1, dtype=np.float32, rng=None, out=None):
    """He et al. (2015): N(0, sigma**2), sigma = gain / sqrt(fan) (sqrt(2 / fan_in) for ReLU),
    untruncated.

    Examples
    --------
    >>> from fastbn.init import he_normal
    >>> he_normal((64, 3, 7, 7), in_axis=1, out_axis=0, rng=0).dtype
    dtype('float32')
    """
    std = _he_std(shape, a, mode, nonlinearity, gain, in_axis, out_axis)
    return _scaled(shape, "normal", std, dtype, rng, out)


def _lecun_std(shape, gain, in_axis, out_axis):
    """LeCun's standard deviation, gain / sqrt(fan_in)."""
    return _gain(gain) / math.sqrt(_fan(_shape(shape), "fan_in", in_axis, out_axis))


@_document("shape", "gain", "in_axis", "out_axis", "dtype", "rng", "out")
def lecun_uniform(shape, gain=1.0, *, in_axis=-2, out_axis=-1, dtype=np.float32, rng=None,
                  out=None):
    """LeCun: uniform on [-a, a], a = gain * sqrt(3 / fan_in).

    Examples
    --------
    >>> from fastbn.init import lecun_uniform
    >>> lecun_uniform((10, 5), rng=0).shape
    (10, 5)
    """
    return _scaled(shape, "uniform", _lecun_std(shape, gain, in_axis, out_axis), dtype, rng, out)


@_document("shape", "gain", "in_axis", "out_axis", "dtype", "rng", "out")
def lecun_normal(shape, gain=1.0, *, in_axis=-2, out_axis=-1, dtype=np.float32, rng=None,
                 out=None):
    """LeCun: N(0, sigma**2), sigma = gain / sqrt(fan_in), untruncated (for SELU networks).

    Examples
    --------
    >>> from fastbn.init import lecun_normal
    >>> lecun_normal((10, 5), rng=0).shape
    (10, 5)
    """
    return _scaled(shape, "normal", _lecun_std(shape, gain, in_axis, out_axis), dtype, rng, out)


@_document("shape", "scale", "mode_vs", "distribution", "in_axis", "out_axis", "dtype", "rng", "out")
def variance_scaling(shape, scale=1.0, mode="fan_in", distribution="truncated_normal", *,
                     in_axis=-2, out_axis=-1, dtype=np.float32, rng=None, out=None):
    """Keras' VarianceScaling: values of variance ``scale / fan``.

    ``distribution``: 'truncated_normal' (at 2 sigma, with sigma = sqrt(scale / fan) /
    0.87962566103423978 so that the truncated variance is scale / fan), 'normal' (untruncated;
    Keras' 'untruncated_normal' is accepted too) or 'uniform' (limit sqrt(3 scale / fan)).
    ``mode``: 'fan_in', 'fan_out' or 'fan_avg'.

    Examples
    --------
    >>> from fastbn.init import variance_scaling
    >>> variance_scaling((300, 200), 2.0, "fan_avg", "uniform", rng=0).shape
    (300, 200)
    """
    scale = v.real(scale, "scale")
    if not (0.0 < scale < math.inf):
        raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
    _choice(mode, "mode", ("fan_in", "fan_out", "fan_avg"))
    _choice(distribution, "distribution",
            ("truncated_normal", "normal", "untruncated_normal", "uniform"))
    if distribution == "untruncated_normal":
        distribution = "normal"
    std = math.sqrt(scale / _fan(_shape(shape), mode, in_axis, out_axis))
    return _scaled(shape, distribution, std, dtype, rng, out)


@_document("shape", "gain", "out_axis", "dtype", "rng", "out")
def orthogonal(shape, gain=1.0, *, out_axis=-1, dtype=np.float32, rng=None, out=None):
    """Saxe et al. (2014): a (semi-)orthogonal matrix times ``gain``.

    The weight is viewed as a matrix M with one column per output unit: rows = the product of
    all axes but ``out_axis``, columns = ``shape[out_axis]`` -- (in, out) and (kh, kw, in, out)
    by default (Keras' flattening), and PyTorch's flattening of (out, in, kh, kw) with
    ``out_axis=0``.  M has orthonormal columns (M.T @ M = gain**2 I) when rows >= columns, else
    orthonormal rows.  Made as PyTorch does: QR of a fastbn N(0, 1) matrix in float64, Q's
    columns multiplied by the signs of diag(R) (so the law is uniform over orthogonal
    matrices), then rounded once from float64 to ``dtype`` (float16 and bfloat16 too: their
    columns are then orthonormal only to within the dtype's rounding, about 2**-11 and 2**-8
    relative).  The QR is fastbn's own, LAPACK's blocked Householder algorithm with its
    operations in a fixed order, so the bits are the same for any thread count and CPU
    (``numpy.linalg.qr``'s, which PyTorch's ``orthogonal_`` takes, are not).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn.init import orthogonal
    >>> w = orthogonal((64, 32), rng=0, dtype=np.float64)
    >>> bool(np.allclose(w.T @ w, np.eye(32)))
    True
    """
    gain = _gain(gain)
    shape, dtype, out = _target(shape, dtype, out)
    rng = _check_rng(rng)
    if len(shape) < 2:
        raise ValueError(f"shape: orthogonal needs at least 2 dimensions, got {shape}")
    o = v.normalize_axis(out_axis, len(shape), "out_axis")
    cols = shape[o]
    rows = math.prod(shape) // cols if cols else math.prod(d for k, d in enumerate(shape) if k != o)
    if rows == 0 or cols == 0:   # an empty weight (PyTorch's orthogonal_ returns it as it is)
        return normal(shape, dtype=dtype, rng=rng, out=out)
    q = normal((max(rows, cols), min(rows, cols)), dtype=np.float64, rng=rng)
    _random.orthogonal_q(q, _config.get_num_threads())    # Q diag(sign(diag(R))), in place
    m = q if rows >= cols else q.T                         # (rows, cols)
    moved = [d for k, d in enumerate(shape) if k != o] + [cols]
    w = np.moveaxis((m * gain).reshape(moved), -1, o)
    if out is None:
        return np.ascontiguousarray(w, dtype=dtype)
    np.copyto(out, w, casting="unsafe")   # out's dtype is checked: a float rounding, once
    return out


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal
