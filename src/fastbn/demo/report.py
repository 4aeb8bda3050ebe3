"""Figures (PNG, matplotlib's Agg backend) and the Markdown table of ``python -m fastbn.demo``."""
import math
import os

from fastbn import _atomic
from fastbn.demo import experiments as ex
from fastbn.demo import require

COLORS = {"zero": "0.45", "normal": "tab:red", "xavier": "tab:blue", "he": "tab:green"}
ACCURACY_PNG = "accuracy.png"
ACTIVATIONS_PNG = "activations.png"
RESULTS_MD = "results.md"


def _pyplot():
    matplotlib = require("matplotlib", "matplotlib")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "matplotlib")


def _style(exp):
    """Color by initialization, solid with batch norm, dashed without (as in the BN paper)."""
    return {"color": COLORS[exp.scheme], "linestyle": "-" if exp.batch_norm else "--",
            "linewidth": 1.6 if exp.batch_norm else 1.3}


def accuracy_figure(results, path):
    """Test accuracy against training steps, one panel per experiment group, plus the training
    loss of the high-learning-rate runs."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    panels = list(ex.GROUPS) + ["high-lr-loss"]
    for ax, group in zip(axes.flat, panels):
        if group == "high-lr-loss":
            for r in results:
                if r.experiment.group == "high-lr":
                    # floor at 1e-4 for the log axis (a confident fit reaches 0.0)
                    loss = [max(v, 1e-4) if math.isfinite(v) else float("nan")
                            for v in r.train_loss]
                    ax.plot(range(1, len(loss) + 1), loss, label=r.experiment.label,
                            alpha=0.85, **_style(r.experiment))
            ax.axhline(math.log(10), color="0.6", linewidth=0.8, linestyle=":")
            ax.set_yscale("log")
            ax.set_title("same runs: training loss per step (dotted: chance, ln 10)", fontsize=10)
            ax.set_ylabel("training loss")
        else:
            for r in results:
                if r.experiment.group == group:
                    ax.plot(r.eval_steps, r.test_accuracy, label=r.experiment.label,
                            **_style(r.experiment))
            ax.axhline(ex.TARGET_ACCURACY, color="0.6", linewidth=0.8, linestyle=":")
            ax.set_ylim(0, 1.0)
            ax.set_title(ex.GROUPS[group], fontsize=10)
            ax.set_ylabel("test accuracy")
        ax.set_xlabel("training steps")
        ax.grid(alpha=0.3)
        if group in ("tanh8", "relu8"):   # the empty band between the stalled and trained runs
            ax.legend(fontsize=8, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 0.16))
        else:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle("fastbn demo: MLPs on the digits data set (SGD, momentum 0.9, batch 64, "
                 f"lr {ex.BASE_LR:g} unless stated; dashed: no batch norm, solid: batch norm)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def activation_figure(stds, path):
    """Per-layer activation standard deviation at initialization, one panel per activation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ex.ACTIVATION_STUDY), figsize=(11, 4.2))
    for ax, activation in zip(axes, ex.ACTIVATION_STUDY):
        for scheme, bn in ex.ACTIVATION_SCHEMES:
            values = stds[(activation, scheme, bn)]
            if not any(v > 0 for v in values):
                continue            # zero init: exactly 0 everywhere, nothing to draw on a log axis
            label = ex.SCHEMES[scheme][0] + (" + BN" if bn else "")
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label,
                    color=COLORS[scheme], linestyle="-" if bn else "--")
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer")
        ax.set_ylabel("std of activations")
        note = "; std near 1: saturated at +-1" if activation == "tanh" else ""
        ax.set_title(f"{activation}, {len(values)} layers at initialization "
                     f"(zero init: 0, not drawn{note})", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fmt_steps(s):
    return "never" if s is None else str(s)


def markdown(results, stds, *, header):
    """The results as Markdown: the training table and the activation-std table."""
    lines = ["# fastbn demo results", "", header, "",
             f"![test accuracy against training steps]({ACCURACY_PNG})", "",
             "## Training runs", "",
             f"Diverged: the training loss became non-finite or exceeded "
             f"{ex.DIVERGENCE_FACTOR:g}x its value on the first batch.  "
             f"Steps to {ex.TARGET_ACCURACY:.0%}: the first evaluation (every 10 steps) with that "
             "test accuracy.", "",
             f"| experiment | activation | hidden layers | init | batch norm | lr | steps "
             f"| final test acc | best test acc | steps to {ex.TARGET_ACCURACY:.0%} | diverged "
             "| time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        e = r.experiment
        lines.append(
            f"| `{e.name}` | {e.activation} | {e.depth} x {e.width} | {ex.SCHEMES[e.scheme][0]} "
            f"| {'yes' if e.batch_norm else 'no'} | {e.lr:g} | {len(r.train_loss)} "
            f"| {r.final_accuracy:.3f} | {r.best_accuracy:.3f} | {_fmt_steps(r.steps_to_target)} "
            f"| {'yes' if r.diverged else 'no'} | {r.seconds:.1f} |")
    depth = len(next(iter(stds.values())))
    lines += ["", "## Activation standard deviation at initialization", "",
              f"Std of each hidden layer's output (after the nonlinearity) for the whole training "
              f"set, fresh networks of {depth} layers (Glorot & Bengio 2010, Figure 6).", "",
              f"![activation std per layer]({ACTIVATIONS_PNG})", "",
              "| activation | init | "
              + " | ".join(f"layer {i}" for i in range(1, depth + 1)) + " |",
              "|---|---|" + "---|" * depth]
    for (activation, scheme, bn), values in stds.items():
        label = ex.SCHEMES[scheme][0] + (" + BN" if bn else "")
        lines.append(f"| {activation} | {label} | " + " | ".join(f"{v:.3g}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def write(out_dir, results, stds, *, header):
    """Write the two figures and results.md into ``out_dir``; return their paths.

    Each file is replaced atomically (:mod:`fastbn._atomic`): an interrupted or failing run
    leaves every previous file whole, never a truncated PNG or table.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name in (ACCURACY_PNG, ACTIVATIONS_PNG, RESULTS_MD)]
    table = markdown(results, stds, header=header)
    with _atomic.replacing(paths[0]) as tmp:
        accuracy_figure(results, tmp)
    with _atomic.replacing(paths[1]) as tmp:
        activation_figure(stds, tmp)
    _atomic.write_text(paths[2], table)
    return paths
