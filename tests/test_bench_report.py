"""``python -m fastbn.bench`` (the main job) runs and writes the tables it promises.

Specification:
- A quick run at 1 and 2 threads prints one Markdown row per kernel, input and thread count, with a
  positive fastbn time and baseline time, and the "alone" table with fastbn's time at each thread
  count and the warm copy's of every kernel, and for a copy roofline the copy's time when it is
  cut into parts run on as many threads.
- ``--quick`` is a smoke run: its tables open with a line saying they are not a measurement and
  hold times alone -- no speed-up, no multiple of the copy, no thread scaling, nothing to quote --
  and it will not write them into a README.  A full run's tables give the ratios of its times.
- Without torch (``--no-torch``, or torch not installed) the tables have no torch columns.
- The tables go to stdout, the progress to stderr: on a terminal with tqdm one bar naming the case
  and its window with the time left, cleared when the run ends; otherwise (stderr not a terminal,
  or no tqdm) a plain line as each window of each table starts, nothing per case.
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
- Every truncated-normal baseline (the report's and the pytest-benchmark suite's) draws as many
  values as fastbn does.
- The pytest-benchmark suite's tables fit in 120 columns, and it runs fastbn on
  FASTBN_BENCH_THREADS threads (default 1), refusing a value that is not a count of threads.
"""
import importlib.util
import math
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from child import PKG_PARENT, run_python
from fastbn.bench import _harness, _progress
from fastbn.bench import __main__ as report_main

pytest.importorskip("scipy")   # the truncated-normal baseline

BENCH_SUITE = Path(__file__).resolve().parents[1] / "bench"
NUMBER = re.compile(r"^\d+\.\d+x?$")   # a time (1.234, 12.34) or a ratio (1.23, 1.23x)


def _rows(table, columns):
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and line.count("|") == columns + 1
            and not line.startswith("| kernel")]


def _headers(table):
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| kernel")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The quick report without torch, run as a user runs it: in a process of its own (it changes
    how that process's malloc reuses memory), stderr a pipe (not a terminal).  The table written
    to --output, and the process's stdout and stderr."""
    out = tmp_path_factory.mktemp("bench") / "table.md"
    r = run_python(None, args=["-m", "fastbn.bench", "--quick", "--threads", "1,2", "--no-torch",
                               "--rounds", "1", "--windows", "2", "--output", str(out)])
    assert r.returncode == 0, r.stderr
    return out.read_text(), r.stdout, r.stderr


def test_every_kernel_has_a_row_at_each_thread_count(report):
    table, _, _ = report
    assert _headers(table)[0] == ["kernel", "input", "threads", "fastbn ms", "baseline",
                                  "baseline ms", "copyto ms"]
    rows = _rows(table, 7)
    kernels = {r[0] for r in rows}
    assert {"bn train", "bn infer", "bn backward", "global_norm", "clip_grad_norm",
            "clip_grad_value", "init he_normal", "init truncated_normal"} <= kernels
    for case in {(r[0], r[1]) for r in rows}:
        assert sorted(r[2] for r in rows if (r[0], r[1]) == case) == ["1", "2"], case
    for r in rows:
        assert float(r[3]) > 0 and float(r[5]) > 0   # fastbn ms, baseline ms


def test_the_alone_table_has_each_thread_count_and_a_warm_copy(report):
    table, _, _ = report
    assert "the median of 2 windows spread over the run" in table.split("fastbn alone")[1]
    assert _headers(table)[1] == ["kernel", "input", "1 thread ms", "2 threads ms",
                                  "warm copyto ms", "copyto: 2 threads ms"]
    alone = _rows(table.split("fastbn alone")[1], 6)
    assert {r[0] for r in alone} >= {"bn train", "bn backward", "init he_normal", "clip_grad_norm"}
    for r in alone:
        assert float(r[2]) > 0 and float(r[3]) > 0
        if r[0].startswith(("bn", "clip", "global")):
            assert float(r[4]) > 0                         # warm copy ms
        if r[0].startswith("bn"):
            assert float(r[5]) > 0                         # the copy on two threads


def test_a_quick_run_says_it_is_no_measurement_and_gives_no_ratio(report):
    table, stdout, _ = report
    assert table.startswith(report_main.QUICK_NOTE + "\n\n")
    assert stdout == table   # the tables on stdout, as written to --output
    for header in _headers(table):
        assert not {"speed-up", "x copyto", "vs torch", "x warm copyto"} & set(header)
        assert not [h for h in header if " vs " in h], header
    main, alone = table.split("fastbn alone")
    for part, width in ((main, 7), (alone, 6)):
        header = _headers(part)[0]
        for r in _rows(part, width):
            for column, cell in zip(header, r):
                if NUMBER.match(cell):
                    assert column.endswith(" ms"), (column, cell)   # a time, not a ratio


def test_a_quick_run_does_not_update_a_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:start -->\nold table\n<!-- bench:end -->\n")
    with pytest.raises(SystemExit) as e:
        report_main.main(["--quick", "--update-readme", str(readme)])
    assert e.value.code == 2
    assert "error: --update-readme: a --quick table is not a measurement" in capsys.readouterr().err
    assert readme.read_text() == "<!-- bench:start -->\nold table\n<!-- bench:end -->\n"


def test_a_full_table_gives_the_ratios_of_its_times():
    case = _harness.Case("bn train", "(4,3) NC f32", fastbn=lambda: None, threads=2)
    t = {"fastbn": 0.002, "reference": 0.008, "torch": 0.003, "copyto": 0.001}
    table = _harness.markdown([_harness.row(case, t)])
    assert _rows(table, 10) == [["bn train", "(4,3) NC f32", "2", "2.000", "reference", "8.000",
                                 "4.00", "2.00", "3.000", "1.50"]]
    assert _headers(table) == [["kernel", "input", "threads", "fastbn ms", "baseline",
                                "baseline ms", "speed-up", "x copyto", "torch ms", "vs torch"]]
    alone = report_main.alone_table(
        [case], [{1: 0.002, 2: 0.0012, "copyto": 0.001, ("copyto", 2): 0.0008}], [1, 2], "how")
    assert _rows(alone, 7) == [["bn train", "(4,3) NC f32", "2.000", "1.000", "2.00", "1.67x",
                                "1.25x"]]


def test_without_torch_there_are_no_torch_columns(report):
    table, _, _ = report
    assert "torch" not in table
    assert "torch ms" in _harness.columns(torch=True, ratios=False)
    assert not [c for c in _harness.columns(torch=False) if "torch" in c]


def test_torch_not_installed_leaves_out_its_columns():
    code = """if 1:
        import sys

        class NoTorch:   # import torch raises ImportError, as without torch installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError(f"No module named {name!r}")

        sys.meta_path.insert(0, NoTorch())
        from fastbn.bench.__main__ import main
        sys.exit(main(["--quick", "--threads", "1", "--rounds", "1", "--only", "bn infer"]))
    """
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert "torch=not installed" in r.stderr
    assert _headers(r.stdout) == [["kernel", "input", "threads", "fastbn ms", "baseline",
                                   "baseline ms", "copyto ms"]]
    assert len(_rows(r.stdout, 7)) == 3 and "torch" not in r.stdout


def test_progress_off_a_terminal_is_a_line_per_window_and_table(report):
    _, _, stderr = report
    lines = stderr.splitlines()
    assert lines[0].startswith("fastbn benchmark report: ")
    assert [re.sub(r", \d+ of \d+ jobs done, about .* left$", "", line) for line in lines[1:]] == [
        "fastbn.bench: the main table, window 1 of 2",
        "fastbn.bench: the main table, window 2 of 2",
        "fastbn.bench: the fastbn alone table, window 1 of 2",
        "fastbn.bench: the fastbn alone table, window 2 of 2"]
    assert re.search(r", \d+ of \d+ jobs done, about \d+ s left$", lines[-1])
    assert "\r" not in stderr


class _Terminal:
    """A text stream that says it is a terminal."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_on_a_terminal_without_tqdm_is_plain_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)   # import tqdm now raises ImportError
    term = _Terminal()
    shown = _progress.progress(4, file=term)
    for table, window in [("main", 1), ("main", 1), ("main", 2), ("main", 2)]:
        shown.start(table, window, 2, "bn train (4,3) NC f32, 1 thread")
    shown.close()
    lines = term.text.splitlines()
    assert lines[0] == "fastbn.bench: the main table, window 1 of 2"
    assert re.fullmatch(r"fastbn.bench: the main table, window 2 of 2, 2 of 4 jobs done, "
                        r"about \d+ s left", lines[1])
    assert len(lines) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal")
def test_progress_on_a_terminal_is_one_bar_cleared_at_the_end():
    pytest.importorskip("tqdm")
    import fcntl
    import pty
    import struct
    import termios

    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    env.pop("FASTBN_FORCE_ISA", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "fastbn.bench", "--quick", "--threads", "1,2", "--no-torch",
         "--rounds", "1", "--only", "bn infer"],
        stdout=subprocess.PIPE, stderr=term_fd, env=env, text=True)
    os.close(term_fd)
    seen = []

    def read():   # drain the terminal while the child runs, or its writes would block
        while True:
            try:
                data = os.read(main_fd, 4096)
            except OSError:   # the child closed its end
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        stdout, _ = child.communicate(timeout=300)
    finally:
        reader.join(timeout=10)
        os.close(main_fd)
    assert child.returncode == 0
    term = b"".join(seen).decode()
    header, bar = term.split("\r\n", 1)
    assert header.startswith("fastbn benchmark report: ")
    assert "\n" not in bar   # one line, redrawn in place
    frames = [f for f in bar.split("\r") if f.strip()]
    assert "window 1/1: bn infer (8,16,14,14) NCHW f32, 1 thread" in frames[1]
    assert any("window 1/1, fastbn alone: bn infer" in f for f in frames)
    assert re.search(r" 9/9 \[\d\d:\d\d, ETA 00:00\]$", frames[-1])
    assert all(len(f) <= 100 for f in frames)   # no frame wraps on a 100-column terminal
    assert bar.endswith("\r") and not bar.rstrip("\r").rsplit("\r", 1)[-1].strip()   # cleared
    assert len(_rows(stdout, 7)) == 6   # the tables, on stdout


def test_update_readme_replaces_only_the_marked_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n")
    report_main._update_readme(str(readme), "| new | table |", [1, 2],
                               report_main._how(2, 5), torch_ok=False, reuse=True)
    text = readme.read_text()
    assert text.startswith("before\n<!-- bench:start -->\n`python -m fastbn.bench --threads 1,2`")
    assert "interleaved rounds: the median of 2 windows" in text
    assert text.endswith("\n\n| new | table |\n<!-- bench:end -->\nafter\n")
    assert "old table" not in text


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


def _load(path):
    """A module of the pytest-benchmark suite, imported from its file."""
    if not path.exists():
        pytest.skip(f"{path} is not here (an installed package's tests)")
    spec = importlib.util.spec_from_file_location(f"_suite_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _count_truncnorm_values(monkeypatch):
    """Make scipy's truncnorm.rvs record the sizes it is asked for (and draw nothing)."""
    from scipy import stats
    sizes = []

    def rvs(a, b, scale=1.0, size=None, random_state=None):
        sizes.append(size)
        return np.empty(size)

    monkeypatch.setattr(stats.truncnorm, "rvs", rvs)
    return sizes


def test_the_suite_times_scipy_on_as_many_values_as_fastbn(monkeypatch):
    suite = _load(BENCH_SUITE / "test_bench_init.py")
    sizes = _count_truncnorm_values(monkeypatch)
    rng = np.random.default_rng(0)
    suite.CASES["scipy-truncnorm"][2](rng)()
    drawn = suite.CASES["fastbn-truncated_normal"][2](rng)()
    assert sum(sizes) == drawn.size == math.prod(suite.SHAPE)


def test_the_report_times_scipy_on_as_many_values_as_fastbn(monkeypatch):
    from fastbn.bench import init as init_cases

    sizes = _count_truncnorm_values(monkeypatch)
    for quick in (True, False):
        n = math.prod(init_cases.QUICK_SHAPE if quick else init_cases.SHAPE)
        for case in init_cases.cases(quick=quick):
            if "truncnorm" in case.reference_label:
                sizes.clear()
                case.reference()
                assert sum(sizes) == n, (case.kernel, quick)
    assert init_cases.truncnorm_baseline(1000, 1.0, None) is not None
    sizes.clear()
    init_cases.truncnorm_baseline(1000, 1.0, None, parts=16)()
    assert sum(sizes) == 1000 and len(sizes) == 16


def test_the_suite_runs_on_fastbn_bench_threads():
    conftest = _load(BENCH_SUITE / "conftest.py")
    assert conftest.bench_threads({}) == 1
    assert conftest.bench_threads({"FASTBN_BENCH_THREADS": "2"}) == 2
    for bad in ("0", "-1", "two", "1.5", ""):
        with pytest.raises(pytest.UsageError, match="^FASTBN_BENCH_THREADS must be"):
            conftest.bench_threads({"FASTBN_BENCH_THREADS": bad})


def test_the_suite_tables_fit_in_120_columns():
    pytest.importorskip("pytest_benchmark")
    if not BENCH_SUITE.exists():
        pytest.skip(f"{BENCH_SUITE} is not here (an installed package's tests)")
    r = run_python(None, args=[
        "-m", "pytest", "-p", "no:cacheprovider", "-q",
        str(BENCH_SUITE / "test_bench_batchnorm.py"), str(BENCH_SUITE / "test_bench_clip.py"),
        "--benchmark-only", "--benchmark-max-time=0.001", "--benchmark-min-rounds=1"])
    assert r.returncode == 0, r.stdout + r.stderr
    tables = [line for line in r.stdout.splitlines()
              if line.startswith(("test_bn[", "test_clip[", "Name (time", "----"))]
    assert len([t for t in tables if t.startswith("Name (time")]) == 12   # 9 bn groups, 3 clip
    assert max(len(line) for line in tables) <= 120
