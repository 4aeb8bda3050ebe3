"""Batch norm's glue: the batch-norm functions of the family's one Cython module, fastbn._norm.

The kernels of batch norm and of the other norms share one kernel list and one instruction-set
choice (csrc/kernels.def, csrc/dispatch.c), so they live in one extension module; this module
keeps batch norm's glue under its own name (src/fastbn/_batchnorm_glue.pxi has the design).
"""
from fastbn._norm import (ISA_NAMES, apply, backward, backward_plain, count_nonfinite, get_isa,
                          grad_apply, grad_sums, infer, infer_plain, layout, moments, set_isa,
                          train, train_plain, update_running)

__all__ = ["ISA_NAMES", "set_isa", "get_isa", "train", "infer", "backward", "moments", "apply",
           "grad_sums", "grad_apply", "update_running", "count_nonfinite", "layout", "train_plain",
           "infer_plain", "backward_plain"]
