"""``python -m fastbn.bench`` (the main job) runs and writes the tables it promises.

Specification:
- A quick run at 1 and 2 threads prints one Markdown row per kernel, input and thread count, with a
  positive fastbn time and a speed-up over its baseline, and the "alone" table with the thread
  scaling and the warm-copy roofline of every kernel, and for a copy roofline the copy's own
  scaling when it is cut into parts run on as many threads.
- ``--update-readme`` replaces only what lies between the bench markers.
- The harness times each contender after a call of its own: a fast contender's timed call follows
  an untimed call of its own, a slow one's does not; every contender gets the same number of
  samples, in an order reversed every other round.
- The thread-scaling measure (fastbn alone) runs at least its rounds and its minimum time, like
  the main table's.
- The report makes glibc's malloc reuse freed memory, so that every contender that allocates
  meets the same heap: a large array allocated after another was freed takes no new pages.
- Both tables time each case in windows spread over the run -- the whole list of cases, then the
  whole list again -- and give each contender the median of its window medians: one window that
  falls in a burst of load moves no figure.
"""
import re
import sys

import pytest

from child import run_python
from fastbn.bench import _harness

pytest.importorskip("scipy")   # the truncated-normal baseline


def _rows(table, columns):
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and line.count("|") == columns + 1
            and not line.startswith("| kernel")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The quick report, run as a user runs it: in a process of its own (it changes how that
    process's malloc reuses memory)."""
    out = tmp_path_factory.mktemp("bench") / "table.md"
    readme = out.parent / "README.md"
    readme.write_text("before\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n")
    r = run_python(None, args=["-m", "fastbn.bench", "--quick", "--threads", "1,2", "--no-torch",
                               "--rounds", "1", "--windows", "2", "--output", str(out),
                               "--update-readme", str(readme)])
    assert r.returncode == 0, r.stderr
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
    table, readme = report
    assert "the median of 2 windows spread over the run" in table.split("fastbn alone")[1]
    assert "interleaved rounds: the median of 2 windows" in readme
    alone = _rows(table.split("fastbn alone")[1], 7)
    assert {r[0] for r in alone} >= {"bn train", "bn backward", "init he_normal", "clip_grad_norm"}
    for r in alone:
        assert float(r[2]) > 0 and re.fullmatch(r"\d+\.\d\dx", r[5])
        if r[0].startswith(("bn", "clip", "global")):
            assert float(r[3]) > 0 and float(r[4]) > 0   # warm copy ms, x warm copy
        if r[0].startswith("bn"):
            assert re.fullmatch(r"\d+\.\d\dx", r[6])       # the copy's own scaling


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
    assert set(t) == {1, 2, "copyto", ("copyto", 2)}
    assert t["copyto"] is None and t[("copyto", 2)] is None
    assert calls[1] == calls[2] > 3 + 1   # more than 3 rounds and the warm-up call of a no-op


def test_cases_are_timed_in_windows_spread_over_the_run():
    calls = []
    seconds = {"a": iter([1.0, 9.0, 2.0]), "b": iter([5.0, 4.0, 6.0])}

    def job(key):
        def run():
            calls.append(key)
            return {"fastbn": next(seconds[key]), "copyto": None}
        return run

    t = _harness.in_windows({"a": job("a"), "b": job("b")}, windows=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert t == {"a": {"fastbn": 2.0, "copyto": None}, "b": {"fastbn": 5.0, "copyto": None}}


def test_the_copy_cut_into_parts_does_the_whole_copy():
    import numpy as np

    a, dst = np.arange(30.0).reshape(5, 6), np.zeros((5, 6))
    parts = _harness.split_copy(a, 2, dst)
    assert len(parts) == 2
    parts[0]()
    assert (dst[:3] == a[:3]).all() and (dst[3:] == 0).all()
    parts[1]()
    np.testing.assert_array_equal(dst, a)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_report_reuses_freed_memory():
    code = """if 1:
        import resource, numpy as np
        from fastbn.bench import _harness
        def faults_of_a_new_64mb_array():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            np.ones((4096, 4096), np.float32)
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        faults_of_a_new_64mb_array()
        fresh = faults_of_a_new_64mb_array()
        reuse = _harness.reuse_freed_memory()
        faults_of_a_new_64mb_array()
        print(fresh, reuse, faults_of_a_new_64mb_array())
    """
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    fresh, reuse, reused = r.stdout.split()
    if reuse == "False":
        pytest.skip("not glibc")
    assert int(fresh) >= 32 > int(reused)   # 64 MB: 32 huge pages or 16384 small ones, or none
