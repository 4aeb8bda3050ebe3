"""float16 and bfloat16: which dtypes they are, and bfloat16's optional provider.

float16 is NumPy's own.  bfloat16 comes from the optional package ``ml_dtypes`` (what JAX and
TensorFlow use), imported lazily on first need: fastbn imports and works without it, and a request
for bfloat16 without it is a TypeError that names the argument and the fix.
"""
import numpy as np

FLOAT16 = np.dtype(np.float16)
# What every error message calls the accepted dtypes.
EXPECTED = "float32, float64, float16 or bfloat16"
INSTALL = "bfloat16 needs the optional package ml_dtypes (pip install ml_dtypes)"

_bf16 = []          # [the bfloat16 dtype or None], filled on first use


def bfloat16():
    """``numpy.dtype(ml_dtypes.bfloat16)``, or None if ml_dtypes is not installed."""
    if not _bf16:
        try:
            import ml_dtypes
            _bf16.append(np.dtype(ml_dtypes.bfloat16))
        except ImportError:
            _bf16.append(None)
    return _bf16[0]


def named_bfloat16(dtype):
    """Whether ``dtype`` is called bfloat16.  ``dtype.name`` is built in Python on every call
    (about 2 us here), into a cache whose bursts of growth tests/test_resources.py saw, so it is
    asked of 2-byte dtypes only."""
    return dtype.itemsize == 2 and dtype.name == "bfloat16"


def kind(dtype, name):
    """'f16', 'bf16' or None (neither) for a dtype, without importing ml_dtypes unless ``dtype``
    is called bfloat16; TypeError naming ``name`` if it is but ml_dtypes is missing."""
    if dtype == FLOAT16:
        return "f16"
    if named_bfloat16(dtype):
        bf = bfloat16()
        if bf is None:
            raise TypeError(f"{name}: {INSTALL}")
        if dtype == bf:
            return "bf16"
    return None


def requested(dtype, name):
    """The dtype that a ``dtype=`` argument names, with ``"bfloat16"`` (the string) resolved
    through ml_dtypes: TypeError naming ``name`` if that is missing.  Other spellings go to
    ``numpy.dtype``, whose TypeError propagates."""
    if isinstance(dtype, str) and dtype.strip().lower() == "bfloat16":
        bf = bfloat16()
        if bf is None:
            raise TypeError(f"{name}: {INSTALL}")
        return bf
    return np.dtype(dtype)
