"""``python -m fastbn.bench`` (the main job) runs and writes the tables it promises.

Specification:
- A quick run at 1 and 2 threads prints one Markdown row per kernel, input and thread count, with a
  positive fastbn time and a speed-up over its baseline, and the "alone" table with the thread
  scaling and the warm-copy roofline of every kernel.
- ``--update-readme`` replaces only what lies between the bench markers.
- The harness times each contender after a call of its own: a fast contender's timed call follows
  an untimed call of its own, a slow one's does not; every contender gets the same number of
  samples, in an order reversed every other round.
- The thread-scaling measure (fastbn alone) runs at least its rounds and its minimum time, like
  the main table's.
"""
import re

import pytest

from fastbn.bench import __main__ as bench
from fastbn.bench import _harness

pytest.importorskip("scipy")   # the truncated-normal baseline


def _rows(table, columns):
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and line.count("|") == columns + 1
            and not line.startswith("| kernel")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "table.md"
    readme = out.parent / "README.md"
    readme.write_text("before\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n")
    assert bench.main(["--quick", "--threads", "1,2", "--no-torch", "--rounds", "1",
                       "--output", str(out), "--update-readme", str(readme)]) == 0
    return out.read_text(), readme.read_text()


def test_every_kernel_has_a_row_at_each_thread_count(report):
    table, _ = report
    rows = _rows(table, 10)
    kernels = {r[0] for r in rows}
    assert {"bn train", "bn infer", "bn backward", "global_norm", "clip_grad_norm",
            "clip_grad_value", "init he_normal", "init truncated_normal"} <= kernels
    for case in {(r[0], r[1]) for r in rows}:
        assert sorted(r[2] for r in rows if (r[0], r[1]) == case) == ["1", "2"], case
    for r in rows:
        assert float(r[3]) > 0 and float(r[6]) > 0   # fastbn ms, speed-up over the baseline


def test_the_alone_table_has_scaling_and_a_warm_copy(report):
    table, _ = report
    alone = _rows(table.split("fastbn alone")[1], 6)
    assert {r[0] for r in alone} >= {"bn train", "bn backward", "init he_normal"}
    for r in alone:
        assert float(r[2]) > 0 and re.fullmatch(r"\d+\.\d\dx", r[5])
        if r[0].startswith("bn"):
            assert float(r[3]) > 0 and float(r[4]) > 0   # warm copy ms, x warm copy


def test_update_readme_replaces_only_the_marked_table(report):
    table, readme = report
    assert readme.startswith("before\n<!-- bench:start -->\n")
    assert readme.endswith("<!-- bench:end -->\nafter\n")
    assert "old table" not in readme and table in readme


def test_each_timed_call_follows_a_call_of_its_own_contender():
    calls = []

    def contender(name, seconds=0.0):
        def fn():
            calls.append(name)
            _harness._busy_wait(seconds)
        return fn

    t = _harness._interleaved({"fast": contender("fast"), "other": contender("other"),
                               "slow": contender("slow", 0.02)},
                              rounds=4, settle=0.001, lead_below=0.01)
    assert set(t) == {"fast", "other", "slow"} and t["slow"] >= 0.02 > t["fast"]
    rounds = calls[3:]   # after the warm-up call of each
    assert rounds[:5] == ["fast", "fast", "other", "other", "slow"]
    assert rounds[5:10] == ["slow", "other", "other", "fast", "fast"]
    assert rounds.count("slow") == 4 and rounds.count("fast") == 8


def test_the_alone_measure_runs_for_its_minimum_time():
    calls = {1: 0, 2: 0}

    def at_threads(n):
        calls[n] += 1

    case = _harness.Case("k", "s", fastbn=lambda: None)
    t = _harness.measure_alone(case, [1, 2], rounds=3, set_threads=at_threads, min_time=0.05,
                               warmup=0.0)
    assert set(t) == {1, 2, "copyto"} and t["copyto"] is None
    assert calls[1] == calls[2] > 3 + 1   # more than 3 rounds and the warm-up call of a no-op
