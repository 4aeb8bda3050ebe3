"""Philox4x32-10: the published known-answer vectors, and every lane of the vectorized kernel
against a from-the-paper Python implementation, on every ISA path."""
import numpy as np
import pytest

import fastbn.init  # noqa: F401  (registers the module's ISA switch)
from fastbn import _random

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox_py(ctr, key):
    """Salmon et al. (2011), Philox4x32 with 10 rounds, written from the paper."""
    x0, x1, x2, x3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * x0, M1 * x2
        x0, x1, x2, x3 = ((p1 >> 32) ^ x1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ x3 ^ k1) & MASK, p0 & MASK
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return [x0, x1, x2, x3]


# Random123's kat_vectors for philox4x32 R=10: (counter, key, expected)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK, MASK, MASK, MASK), (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_reference_matches_known_answers(ctr, key, expected):
    assert philox_py(ctr, key) == list(expected)


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_kernel_matches_known_answers(isa, ctr, key, expected):
    seed = np.array([key[0], key[1], ctr[2], ctr[3]], dtype=np.uint32)
    block = ctr[0] | (ctr[1] << 32)
    words = _random.philox_words(seed, block, 1)
    assert words[0].tolist() == list(expected)


def test_every_lane_matches_reference(isa):
    seed = np.array([0x01234567, 0x89ABCDEF, 0xDEADBEEF, 0x0BADF00D], dtype=np.uint32)
    block0 = (1 << 32) - 7          # crosses the carry into the second counter word
    words = _random.philox_words(seed, block0, 133)   # 2 full groups of 64 lanes and a tail
    for i, row in enumerate(words):
        b = block0 + i
        ctr = (b & MASK, b >> 32, int(seed[2]), int(seed[3]))
        assert row.tolist() == philox_py(ctr, (int(seed[0]), int(seed[1])))
