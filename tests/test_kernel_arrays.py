"""The shared helpers that hand arrays to the C kernels (fastbn._validation), as a specification.

Every norm reaches its kernel through them: an input becomes C-contiguous, aligned and native
(copied only when it is not so already), and an output is written into ``out`` or a new array in
the memory order of ``x``, through scratch when the kernel cannot write it directly.
"""
import numpy as np
import pytest

from fastbn import _validation as v


def unaligned(values):
    """A float64 view of ``values`` at an odd address (NumPy flags it unaligned)."""
    raw = np.zeros(values.size * 8 + 1, dtype=np.uint8)
    a = raw[1:].view(np.float64).reshape(values.shape)
    a[...] = values
    assert not a.flags.aligned
    return a


def test_kernel_array_returns_a_ready_array_itself():
    a = np.arange(6.0).reshape(2, 3)
    assert v.kernel_array(a, np.float64) is a
    assert v.kernel_array(None, np.float64) is None


@pytest.mark.parametrize("make", [
    lambda a: a.T.copy().T,                     # Fortran order
    lambda a: a.astype(">f8"),                  # byte-swapped
    lambda a: a.astype(np.float32),             # another dtype: converted (stats to float64)
    unaligned,
], ids=["fortran", "byteswapped", "float32", "unaligned"])
def test_kernel_array_copies_to_c_contiguous_aligned_native(make):
    values = np.arange(6.0).reshape(2, 3)
    a = make(values)
    before = a.copy()
    k = v.kernel_array(a, np.float64)
    assert k is not a and not np.shares_memory(k, a)
    assert k.flags.c_contiguous and k.flags.aligned and k.dtype == np.float64
    assert k.dtype.isnative
    np.testing.assert_array_equal(k, values)
    np.testing.assert_array_equal(a, before)    # the caller's array is only read


def test_kernel_array_transposes_by_perm():
    a = np.arange(24.0).reshape(2, 3, 4)
    k = v.kernel_array(a, np.float64, perm=(0, 2, 1))
    assert k.shape == (2, 4, 3) and k.flags.c_contiguous
    np.testing.assert_array_equal(k, a.transpose(0, 2, 1))


def test_out_buffers_write_a_new_array_directly_when_x_is_c_contiguous():
    x = np.ones((2, 3), dtype=np.float32)
    buf, target = v.out_buffers(None, x, np.dtype(np.float32))
    assert buf is target and target.shape == x.shape and target.dtype == np.float32


def test_out_buffers_keep_the_memory_order_of_x_through_scratch():
    x = np.ones((2, 3)).T                       # Fortran-ordered (3, 2)
    buf, target = v.out_buffers(None, x, np.dtype(np.float64))
    assert buf is not target and buf.flags.c_contiguous and target.flags.f_contiguous
    buf[...] = np.arange(6.0).reshape(3, 2)
    y = v.deliver(buf, target)
    assert y is target
    np.testing.assert_array_equal(y, np.arange(6.0).reshape(3, 2))


@pytest.mark.parametrize("make_out", [
    lambda: np.zeros((3, 2), dtype=">f8"),     # byte-swapped: the kernel writes native only
    lambda: np.zeros((2, 3)).T,                 # not C-contiguous
    lambda: unaligned(np.zeros((3, 2))),
], ids=["byteswapped", "fortran", "unaligned"])
def test_out_buffers_fill_an_out_the_kernel_cannot_write_through_scratch(make_out):
    out = make_out()
    x = np.ones((3, 2))
    buf, target = v.out_buffers(out, x, np.dtype(np.float64))
    assert target is out and buf is not out and v.kernel_ready(buf)
    buf[...] = np.arange(6.0).reshape(3, 2)
    assert v.deliver(buf, target) is out
    np.testing.assert_array_equal(out, np.arange(6.0).reshape(3, 2))


def test_out_buffers_give_a_ready_out_to_the_kernel_itself():
    out = np.zeros((3, 2))
    buf, target = v.out_buffers(out, np.ones((3, 2)), np.dtype(np.float64))
    assert buf is out and target is out


def test_out_buffers_with_perm_write_the_transposed_layout_and_deliver_undoes_it():
    x = np.ones((2, 3, 4))
    perm = (0, 2, 1)
    buf, target = v.out_buffers(None, x, np.dtype(np.float64), perm)
    assert buf.shape == (2, 4, 3) and target.shape == x.shape
    buf[...] = np.arange(24.0).reshape(2, 4, 3)
    y = v.deliver(buf, target, perm)
    np.testing.assert_array_equal(y, buf.transpose(0, 2, 1))


def test_to_native_keeps_native_arrays_and_the_memory_order():
    a = np.arange(6.0).reshape(2, 3)
    assert v.to_native(a) is a
    swapped = np.asfortranarray(a.astype(">f8"))
    n = v.to_native(swapped)
    assert n.dtype == np.float64 and n.dtype.isnative and n.flags.f_contiguous
    np.testing.assert_array_equal(n, a)


@pytest.mark.parametrize("min_ndim, layout, message", [
    (1, "", "x: expected an array with at least 1 dimension, got 0-d shape ()"),
    (2, v.BATCH_LAYOUT, "x: expected an array with at least 2 dimensions (batch, channels, ...), "
                        "got 0-d shape ()"),
])
def test_input_array_names_the_argument_and_the_dimensions(min_ndim, layout, message):
    with pytest.raises(ValueError) as e:
        v.input_array(np.float64(1.0), "x", min_ndim, layout)
    assert str(e.value) == message
    a = np.ones((2, 2), dtype=">f4")
    assert v.input_array(a, "x", 2) is a        # either byte order, returned as given
