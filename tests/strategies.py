"""Hypothesis building blocks for tests/test_fuzz.py: values, memory layouts, out= buffers.

Every array is laid out in a uint8 "store" that the test keeps, so that it can check that the
memory of every input (and of every buffer a failing call may write) is unchanged byte for byte.
"""
import sys

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOATS = [np.dtype(np.float32), np.dtype(np.float64)]
SWAPPED = "big" if sys.byteorder == "little" else "little"

# Layouts of an input.  "broadcast" (a zero-stride view, read-only) only where the array is only
# read; "unaligned" is a float view at an odd byte offset of a uint8 buffer.
LAYOUTS = ["c", "fortran", "permuted", "negative", "strided", "unaligned", "broadcast"]


class Stores:
    """The uint8 buffers behind every array of one case, to snapshot and compare."""

    def __init__(self):
        self.items = []   # (name, store)

    def add(self, name, store):
        self.items.append((name, store))

    def snapshot(self):
        return [(name, store.tobytes()) for name, store in self.items]

    def changed(self, snap, ignore=()):
        """Names of the stores whose bytes differ from ``snap`` (those in ``ignore`` skipped)."""
        return [name for (name, store), (_, before) in zip(self.items, snap)
                if name not in ignore and store.tobytes() != before]


def _alloc(stores, name, shape, dtype, offset=0):
    """A C-contiguous array of ``shape`` at byte ``offset`` of a fresh uint8 store."""
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    store = np.full(n + offset + 8, 0xA5, dtype=np.uint8)   # a recognizable fill
    stores.add(name, store)
    return store[offset:offset + n].view(dtype).reshape(shape)


def place(data, stores, name, values, *, writeable=True, layouts=None, byteorders=True):
    """An array equal to ``values`` (C-contiguous, native) in a drawn layout and byte order.

    Returns the array; ``stores`` gets its memory.  A "broadcast" layout first makes ``values``
    constant along one axis (the array is then a zero-stride view of that slice), so the
    returned array, not ``values``, holds the case's input.
    """
    dtype = values.dtype
    if byteorders and data.draw(st.booleans(), label=f"{name} swapped"):
        dtype = dtype.newbyteorder(">" if SWAPPED == "big" else "<")
    kinds = list(layouts or LAYOUTS)
    if writeable or values.ndim == 0:   # a zero-stride view is read-only
        kinds = [k for k in kinds if k != "broadcast"]
    kind = data.draw(st.sampled_from(kinds), label=f"{name} layout")
    shape, nd = values.shape, values.ndim
    if kind == "c" or nd == 0:
        a = _alloc(stores, name, shape, dtype)
    elif kind == "fortran":
        a = _alloc(stores, name, shape[::-1], dtype).T
    elif kind == "permuted":
        perm = data.draw(st.permutations(range(nd)), label=f"{name} perm")
        base = _alloc(stores, name, tuple(shape[p] for p in perm), dtype)
        a = base.transpose(np.argsort(perm))
    elif kind == "negative":
        flips = data.draw(st.lists(st.booleans(), min_size=nd, max_size=nd), label=f"{name} flips")
        base = _alloc(stores, name, shape, dtype)
        a = base[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    elif kind == "strided":
        steps = data.draw(st.lists(st.sampled_from([1, 2, 3, -2]), min_size=nd, max_size=nd),
                          label=f"{name} steps")
        big = _alloc(stores, name, tuple(abs(s) * max(n, 1) + 1 for s, n in zip(steps, shape)), dtype)
        a = big[tuple(slice(1, 1 + abs(s) * n, s) if s > 0 else slice(abs(s) * n, 0, s)
                      for s, n in zip(steps, shape))]
    elif kind == "unaligned":
        offset = data.draw(st.sampled_from([1, 3, 5, 7]), label=f"{name} offset")
        a = _alloc(stores, name, shape, dtype, offset)
    else:  # broadcast: a zero-stride view along one axis
        axis = data.draw(st.integers(0, nd - 1), label=f"{name} broadcast axis")
        one = list(shape)
        one[axis] = 1
        base = _alloc(stores, name, tuple(one), dtype)
        src = values[tuple(slice(0, 1) if k == axis else slice(None) for k in range(nd))]
        if src.size:
            base[...] = src
        a = np.broadcast_to(base, shape)
        assert a.shape == shape
        return a
    assert a.shape == shape, (kind, a.shape, shape)
    a[...] = values
    if not writeable:
        a.flags.writeable = False
    return a


SPECIALS = {
    "nan": np.nan, "inf": np.inf, "-inf": -np.inf, "-0": -0.0,
    "subnormal": "subnormal", "-subnormal": "-subnormal", "max": "max", "-max": "-max",
}


def _special(dtype, name):
    fi = np.finfo(dtype)
    v = SPECIALS[name]
    if v == "subnormal":
        return float(fi.smallest_subnormal)
    if v == "-subnormal":
        return -float(fi.smallest_subnormal)
    if v == "max":
        return float(fi.max)
    if v == "-max":
        return -float(fi.max)
    return v


def values(data, name, shape, dtype, *, specials=True, nonfinite=True, kinds=None):
    """A C-contiguous native array of ``shape``: Gaussian data with a drawn offset and spread,
    any finite floats (hypothesis' mix of tiny, huge and round values), or a constant; then
    optionally a few special values (NaN, +-inf, -0, subnormals, +-max) at drawn positions."""
    dtype = np.dtype(dtype)
    kind = data.draw(st.sampled_from(kinds or ["gauss", "gauss", "floats", "const"]),
                     label=f"{name} kind")
    width = 8 * dtype.itemsize
    if kind == "gauss":
        seed = data.draw(st.integers(0, 2**32 - 1), label=f"{name} seed")
        loc = data.draw(st.sampled_from([0.0, 1.0, -3.0, 1e4, -1e6]), label=f"{name} loc")
        spread = data.draw(st.sampled_from([1.0, 1e-3, 100.0, 1e-6]), label=f"{name} spread")
        a = np.random.default_rng(seed).standard_normal(shape) * spread + loc
        a = a.astype(dtype)
    elif kind == "floats":
        a = data.draw(hnp.arrays(dtype, shape, elements=st.floats(
            width=width, allow_nan=False, allow_infinity=False)), label=f"{name} floats")
    else:
        c = data.draw(st.floats(width=width, allow_nan=False, allow_infinity=False),
                      label=f"{name} const")
        a = np.full(shape, c, dtype=dtype)
    a = np.ascontiguousarray(a, dtype=dtype)
    if specials and a.size:
        names = [n for n in SPECIALS if nonfinite or n not in ("nan", "inf", "-inf")]
        picks = data.draw(st.lists(st.tuples(st.integers(0, a.size - 1), st.sampled_from(names)),
                                   max_size=3), label=f"{name} specials")
        flat = a.reshape(-1)
        for i, s in picks:
            flat[i] = _special(dtype, s)
    return a


def shapes(data, name, *, min_dims=2, max_dims=4, max_side=5):
    """A shape with zeros and ones along any axis (ones and zeros drawn more often)."""
    side = st.one_of(st.sampled_from([0, 1, 1, 2]), st.integers(0, max_side))
    return tuple(data.draw(st.lists(side, min_size=min_dims, max_size=max_dims), label=name))


def unaligned_copy(a):
    """A copy of ``a`` at an odd byte offset of a uint8 buffer: C-contiguous, not aligned."""
    store = np.zeros(a.nbytes + 1, np.uint8)
    u = store[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned and u.flags.c_contiguous
    return u
