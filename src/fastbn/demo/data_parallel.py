"""``mpiexec -n P python -m fastbn.demo --data-parallel``: the digits networks trained
data-parallel over P processes, against one process on the global batch.

Every process draws the same global mini-batches of 64 (the seeds of :mod:`experiments`) and
takes its rows: shard ``r`` of ``P`` nearly equal ones (64 = 16 * 4; 22 + 21 + 21 for P = 3).
The batch-norm layers are :class:`fastbn.distributed.SyncBatchNorm`, so each normalizes with the
statistics of the global batch and returns the global ``dgamma`` and ``dbeta``; the gradients
of the dense layers are sums over the local rows, added over the processes in rank order (one
Allgather of all of them per step, so that every process holds bitwise the same parameters) and
scaled by the global batch size, as one process's mean loss does.  Clipping and the update then
run on every process identically.

Process 0 then trains the same networks the usual way (one process, :class:`fastbn.BatchNorm`,
the whole batch) and compares: the accuracy and loss curves agree up to float rounding (the
sums are added in another order).  It writes ``data-parallel.png`` (the curves of both) and
``data-parallel.json`` (the curves and their largest differences) into ``--out``.
"""
import json
import math
import os
import time

import numpy as np

import fastbn
from fastbn import _atomic
from fastbn.demo import experiments as ex
from fastbn.demo.nn import SGD, Dense, accuracy, mlp, softmax_cross_entropy

FIGURE = "data-parallel.png"
RESULTS = "data-parallel.json"

#: the batch-norm networks of the main demo trained data-parallel
EXPERIMENTS = [ex.Experiment("relu8", "he", "relu", 8, True),
               ex.Experiment("tanh8", "xavier", "tanh", 8, True)]


def shard(n, size, rank):
    """(lo, hi): rank's rows of n split into ``size`` nearly equal parts, in rank order."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _sum_over_ranks(comm, arrays):
    """Each array replaced in place by its sum over the processes, added in rank order from one
    float64 Allgather (the same bits on every process)."""
    from fastbn.distributed import _allgather
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
    gathered = _allgather(comm, flat)
    total = gathered[0].copy()
    for row in gathered[1:]:
        total += row
    k = 0
    for a in arrays:
        a[...] = total[k:k + a.size].reshape(a.shape)
        k += a.size


def train(exp, data, comm, *, steps=None, eval_every=10):
    """``exp`` trained on this process's shard of every global batch; the Result on every rank."""
    from fastbn.distributed import SyncBatchNorm
    steps = exp.steps if steps is None else steps
    start = time.perf_counter()
    lo, hi = shard(ex.BATCH_SIZE, comm.Get_size(), comm.Get_rank())
    model = mlp([data.x_train.shape[1]] + [exp.width] * exp.depth + [10],
                activation=exp.activation, init=ex.initializer(exp.scheme), batch_norm=True,
                rng=np.random.default_rng([ex.SEED, 1]),
                norm_layer=lambda n, dtype: SyncBatchNorm(n, comm=comm, dtype=dtype))
    optimizer = SGD(exp.lr, momentum=ex.MOMENTUM)
    batches = ex._batches(len(data.y_train), ex.BATCH_SIZE, np.random.default_rng([ex.SEED, 2]))
    res = ex.Result(exp, [0], [accuracy(model, data.x_test, data.y_test)])
    for step in range(1, steps + 1):
        idx = next(batches)[lo:hi]
        n_local = len(idx)
        mean_loss, dlogits = softmax_cross_entropy(model.forward(data.x_train[idx]),
                                                   data.y_train[idx])
        dlogits *= dlogits.dtype.type(n_local / ex.BATCH_SIZE)   # d(global mean loss)/dlogits
        model.backward(dlogits)
        dense = [g for layer in model.layers if isinstance(layer, Dense)
                 for _, g in layer.parameters()]
        loss = np.array([mean_loss * n_local])
        _sum_over_ranks(comm, dense + [loss])                    # SyncBatchNorm's: global already
        params = model.parameters()
        fastbn.clip_grad_norm([g for _, g in params], ex.MAX_NORM)
        optimizer.step(params)
        res.train_loss.append(float(loss[0]) / ex.BATCH_SIZE)
        if step % eval_every == 0 or step == steps:
            res.eval_steps.append(step)
            res.test_accuracy.append(accuracy(model, data.x_test, data.y_test))
    res.seconds = time.perf_counter() - start
    return res


def _figure(pairs, size, path):
    from fastbn.demo import report
    plt = report._pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for (par, one), color in zip(pairs, ("tab:green", "tab:blue")):
        label = par.experiment.label + f" ({par.experiment.activation})"
        axes[0].plot(one.eval_steps, one.test_accuracy, color=color, linewidth=3, alpha=0.35,
                     label=f"{label}: 1 process, batch 64")
        axes[0].plot(par.eval_steps, par.test_accuracy, color=color, linewidth=1.2,
                     linestyle="--", label=f"{label}: {size} processes, SyncBatchNorm")
        diff = [abs(a - b) / abs(b) if b else abs(a) for a, b in zip(par.train_loss, one.train_loss)]
        axes[1].plot(range(1, len(diff) + 1), [max(d, 1e-17) for d in diff], color=color,
                     label=label)
    axes[0].set_ylim(0, 1.0)
    axes[0].set_xlabel("training steps")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_title(f"digits, 8 x 64 MLP + BN: {size} processes vs 1 (same global batches)",
                      fontsize=10)
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("training steps")
    axes[1].set_ylabel("relative difference of the training loss")
    axes[1].set_title("data-parallel vs one process: float rounding only", fontsize=10)
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(out, quick=False, log=print):
    """Run the comparison under MPI (``mpiexec -n P``); process 0 writes the files.  Returns 0."""
    from fastbn.distributed import _mpi
    comm = _mpi().COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    data = ex.load_data()
    steps, eval_every = (12, 4) if quick else (None, 10)
    say = log if rank == 0 else (lambda text: None)
    say(f"fastbn {fastbn.__version__} demo, data-parallel: {size} processes, global batch "
        f"{ex.BATCH_SIZE} (shards {[shard(ex.BATCH_SIZE, size, r)[1] - shard(ex.BATCH_SIZE, size, r)[0] for r in range(size)]})"
        f"{', QUICK' if quick else ''}")
    parallel = []
    for exp in EXPERIMENTS:
        r = train(exp, data, comm, steps=steps, eval_every=eval_every)
        parallel.append(r)
        say(f"  {exp.name} on {size} processes: test acc {r.final_accuracy:.3f}, {r.seconds:.1f} s")
    if rank != 0:
        return 0
    pairs, summary = [], {"processes": size, "batch_size": ex.BATCH_SIZE, "runs": []}
    for exp, par in zip(EXPERIMENTS, parallel):
        one = ex.train(exp, data, steps=steps, eval_every=eval_every)
        pairs.append((par, one))
        acc_diff = max(abs(a - b) for a, b in zip(par.test_accuracy, one.test_accuracy))
        loss_diff = max(abs(a - b) / abs(b) for a, b in zip(par.train_loss, one.train_loss))
        summary["runs"].append({
            "experiment": exp.name, "eval_steps": par.eval_steps,
            "accuracy_parallel": par.test_accuracy, "accuracy_one_process": one.test_accuracy,
            "loss_parallel": par.train_loss, "loss_one_process": one.train_loss,
            "max_accuracy_difference": acc_diff, "max_relative_loss_difference": loss_diff,
            "seconds_parallel": par.seconds, "seconds_one_process": one.seconds})
        say(f"  {exp.name} on 1 process:  test acc {one.final_accuracy:.3f}; largest differences: "
            f"accuracy {acc_diff:.3g}, relative loss {loss_diff:.3g}")
    os.makedirs(out, exist_ok=True)
    fig_path, json_path = os.path.join(out, FIGURE), os.path.join(out, RESULTS)
    with _atomic.replacing(fig_path) as tmp:
        _figure(pairs, size, tmp)
    _atomic.write_text(json_path, json.dumps(summary, indent=1) + "\n")
    say(f"wrote {fig_path}, {json_path}")
    assert all(math.isfinite(x) for r in summary["runs"] for x in r["loss_parallel"])
    return 0
