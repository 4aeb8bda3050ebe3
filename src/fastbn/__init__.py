"""fastbn: batch normalization, weight initialization and gradient clipping in C, for NumPy.

Public API
----------
batch_norm_train, batch_norm_infer, batch_norm_backward, BatchNorm
BatchNormResult, BatchNormGrads : the named tuples batch_norm_train and batch_norm_backward return
batch_norm_stats, merge_stats, batch_norm_apply, update_running_stats, batch_norm_backward_reduce,
batch_norm_backward_apply : batch norm split into parts, for statistics merged across processes
(fastbn.batchnorm_parts)
distributed : synchronized batch norm over MPI processes (sync_batch_norm_train,
sync_batch_norm_backward, SyncBatchNorm; needs mpi4py: pip install "fastbn[mpi]"), imported as
``fastbn.distributed``
layer_norm, rms_norm, group_norm, instance_norm (and their _backward), LayerNorm, RMSNorm,
GroupNorm, InstanceNorm : the other normalizations, on one core (fastbn.norm)
fold_batch_norm : an inference-mode batch norm folded into the preceding layer's weights
global_norm, clip_grad_norm, clip_grad_value, clip_by_norm
set_num_threads, get_num_threads, show_config
init : weight initializers (Glorot/He/LeCun, variance scaling, orthogonal) on a counter-based RNG
reference : plain-NumPy twins of the kernels (the test oracle and benchmark baseline)
__version__ : the version string
"""
from fastbn._version import __version__
from fastbn._config import get_num_threads, set_num_threads, show_config
from fastbn.batchnorm import (BatchNormGrads, BatchNormResult, batch_norm_backward,
                              batch_norm_infer, batch_norm_train)
from fastbn.batchnorm_parts import (batch_norm_apply, batch_norm_backward_apply,
                                    batch_norm_backward_reduce, batch_norm_stats, merge_stats,
                                    update_running_stats)
from fastbn.norm import (group_norm, group_norm_backward, instance_norm,
                         instance_norm_backward, layer_norm, layer_norm_backward, rms_norm,
                         rms_norm_backward)
from fastbn.fold import fold_batch_norm
from fastbn.clip import clip_by_norm, clip_grad_norm, clip_grad_value, global_norm
from fastbn.layers import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from fastbn import init, reference

__all__ = [
    "__version__", "batch_norm_train", "batch_norm_infer", "batch_norm_backward",
    "BatchNormResult", "BatchNormGrads", "BatchNorm", "set_num_threads", "get_num_threads",
    "show_config", "reference", "global_norm", "clip_grad_norm", "clip_grad_value", "clip_by_norm",
    "init", "layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "group_norm",
    "group_norm_backward", "instance_norm", "instance_norm_backward", "LayerNorm", "RMSNorm",
    "GroupNorm", "InstanceNorm", "batch_norm_stats", "merge_stats", "batch_norm_apply",
    "update_running_stats", "batch_norm_backward_reduce", "batch_norm_backward_apply",
    "fold_batch_norm",
]
