"""Stub of fastbn._batchnorm: batch norm's glue in fastbn._norm (src/fastbn/_batchnorm_glue.pxi).

Low-level glue: the arrays must already be validated and laid out by :mod:`fastbn.batchnorm`.
"""
from fastbn._norm import ISA_NAMES as ISA_NAMES
from fastbn._norm import set_isa as set_isa
from fastbn._norm import get_isa as get_isa
from fastbn._norm import train as train
from fastbn._norm import infer as infer
from fastbn._norm import backward as backward
from fastbn._norm import moments as moments
from fastbn._norm import apply as apply
from fastbn._norm import grad_sums as grad_sums
from fastbn._norm import grad_apply as grad_apply
from fastbn._norm import update_running as update_running
from fastbn._norm import count_nonfinite as count_nonfinite
from fastbn._norm import layout as layout
from fastbn._norm import train_plain as train_plain
from fastbn._norm import infer_plain as infer_plain
from fastbn._norm import backward_plain as backward_plain

__all__ = ["ISA_NAMES", "set_isa", "get_isa", "train", "infer", "backward", "moments", "apply",
           "grad_sums", "grad_apply", "update_running", "count_nonfinite", "layout", "train_plain",
           "infer_plain", "backward_plain"]
