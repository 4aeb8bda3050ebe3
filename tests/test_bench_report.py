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
- The output opens with the machine: CPU, cores, caches and the last level's size, Linux's
  transparent-huge-page mode, fastbn's instruction set, NumPy's version, and the cold state's
  flush (three times the last-level cache).
- Batch-norm rows are timed in each state of ``--state`` (default b2b, producer, cold), one row per
  (kernel, input, threads, state); the other areas keep their protocol (b2b). The state's step runs
  untimed before every timed call of every contender: b2b none (a call of its own), producer the
  inputs rewritten with the same bytes, cold a flush of the last-level cache.
- The last-level cache comes from sysfs (data and unified caches, the highest level), then
  sysconf, then a documented default.
- ``--big`` times batch norm on inputs of at least 4x the last-level cache.
- Every contender of every batch-norm and norm-family case (fastbn, NumPy, torch) computes on the
  case's own input.  The small calls' rows (named after the functions: a fully-connected layer's
  batch norm, small layer, RMS and group norms) time fastbn writing into an output allocated
  once, and their times keep their digits: under 0.1 ms, four decimals of a millisecond.
- The floor: a C kernel on fastbn's pool reads float32 arrays (its checksum that of the data) or
  writes their sum (exactly, aligned or not, in place of the cache or past it); each batch-norm
  kernel's floor moves the bytes per element of its minimal traffic (8 to 28), and a full
  table gives fastbn's time over it ("x floor"), within 120 columns.
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
import dataclasses
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
from fastbn.bench import _harness, _machine, _progress, floor
from fastbn.bench import batchnorm as bn_cases
from fastbn.bench import norms as norm_cases
from fastbn.bench import small as small_cases
from fastbn.bench import __main__ as report_main

pytest.importorskip("scipy")   # the truncated-normal baseline

BENCH_SUITE = Path(__file__).resolve().parents[1] / "bench"
BN_QUICK = ["kernel", "input", "threads", "state", "fastbn ms", "NumPy ms", "copyto ms",
            "floor ms"]
OTHER_QUICK = ["kernel", "input", "threads", "fastbn ms", "baseline", "baseline ms", "copyto ms"]
SMALL_CALLS = ["batch_norm_train", "batch_norm_infer", "batch_norm_backward", "layer_norm",
               "layer_norm_backward", "rms_norm", "rms_norm_backward", "group_norm",
               "group_norm_backward"]
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
    assert _headers(table)[:2] == [BN_QUICK, OTHER_QUICK]
    bn, other = _rows(table, 8), _rows(table, 7)
    assert {r[0] for r in bn} == {"bn train", "bn infer", "bn backward", "bn+relu train",
                                  "bn+add+relu train", "bn+relu backward", "ln forward",
                                  "ln backward", "rms forward", "rms backward", "gn forward",
                                  "gn backward", "in forward", "in backward"}
    assert {"global_norm", "clip_grad_norm", "clip_grad_value", "init he_normal",
            "init truncated_normal"} <= {r[0] for r in other}
    assert set(SMALL_CALLS) <= {r[0] for r in other}
    for case in {(r[0], r[1]) for r in bn}:   # every state at each thread count
        assert sorted((r[2], r[3]) for r in bn if (r[0], r[1]) == case) == [
            (n, s) for n in ("1", "2") for s in ("b2b", "cold", "producer")], case
    for case in {(r[0], r[1]) for r in other}:
        assert sorted(r[2] for r in other if (r[0], r[1]) == case) == ["1", "2"], case
    for r in bn:
        assert float(r[4]) > 0 and float(r[5]) > 0 and float(r[7]) > 0   # fastbn, NumPy, floor
    for r in other:
        assert float(r[3]) > 0 and float(r[5]) > 0   # fastbn ms, baseline ms


def test_the_alone_table_has_each_thread_count_and_a_warm_copy(report):
    table, _, _ = report
    assert "the median of 2 windows spread over the run" in table.split("fastbn alone")[1]
    assert _headers(table)[2] == ["kernel", "input", "1 thread ms", "2 threads ms",
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
    machine, rest = table.split("\n\n", 1)
    assert machine.startswith("Machine: ") and rest.startswith(report_main.QUICK_NOTE + "\n\n")
    assert stdout == table   # the tables on stdout, as written to --output
    for header in _headers(table):
        assert not {"speed-up", "x copyto", "vs torch", "x warm copyto"} & set(header)
        assert not [h for h in header if " vs " in h], header
    blocks = [b for b in table.split("\n\n") if b.startswith("| kernel")]
    assert len(blocks) == 3   # batch norm, the other areas, fastbn alone
    for block in blocks:
        header = _headers(block)[0]
        for r in _rows(block, len(header)):
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
    case = _harness.Case("bn train", "(4,3) NC f32", fastbn=lambda: None, threads=2,
                         state="cold")
    t = {"fastbn": 0.002, "reference": 0.008, "torch": 0.003, "copyto": 0.001, "floor": 0.0016}
    table = _harness.markdown([_harness.row(case, t)], _harness.columns(bn=True))
    assert _rows(table, 11) == [["bn train", "(4,3) NC f32", "2", "cold", "2.000", "8.000",
                                 "4.00", "2.00", "1.25", "3.000", "1.50"]]
    assert _headers(table) == [["kernel", "input", "threads", "state", "fastbn ms", "NumPy ms",
                                "speed-up", "x copyto", "x floor", "torch ms", "vs torch"]]
    other = _harness.markdown([_harness.row(case, t)])
    assert _rows(other, 10) == [["bn train", "(4,3) NC f32", "2", "2.000", "reference", "8.000",
                                 "4.00", "2.00", "3.000", "1.50"]]
    alone = report_main.alone_table(
        [case], [{1: 0.002, 2: 0.0012, "copyto": 0.001, ("copyto", 2): 0.0008}], [1, 2], "how")
    assert _rows(alone, 7) == [["bn train", "(4,3) NC f32", "2.000", "1.000", "2.00", "1.67x",
                                "1.25x"]]


def test_without_torch_there_are_no_torch_columns(report):
    table, _, _ = report
    assert "torch" not in table.replace("torch not used", "")
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
    assert _headers(r.stdout) == [BN_QUICK]
    assert len(_rows(r.stdout, 8)) == 12   # 4 inputs, 3 states
    assert "torch" not in r.stdout.replace("torch not used", "")


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
    assert re.search(r" 28/28 \[\d\d:\d\d, ETA 00:00\]$", frames[-1])   # 24 main, 4 alone
    assert all(len(f) <= 100 for f in frames)   # no frame wraps on a 100-column terminal
    assert bar.endswith("\r") and not bar.rstrip("\r").rsplit("\r", 1)[-1].strip()   # cleared
    assert len(_rows(stdout, 8)) == 24 and len(_rows(stdout, 6)) == 4   # the tables, on stdout


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


def test_the_report_opens_with_the_machine(report):
    from fastbn import _config
    table, _, _ = report
    head = table.split("\n\n")[0].splitlines()
    assert head[0].startswith("Machine: CPU: ") and "logical CPUs" in head[0]
    assert head[1].startswith("caches ") and "last level " in head[1]
    assert head[2] == f"transparent huge pages: {_machine.huge_pages() or 'unknown'};"
    assert f"isa {_config.get_isa()}; numpy {np.__version__}; torch not used" in head[3]
    llc, _ = _machine.last_level_cache()
    assert head[4].startswith(f"cold state: a flush of {3 * llc >> 20} MB (3x the last-level")
    assert head[4].endswith(".") and len(head) == 5


def test_the_huge_page_mode_is_the_bracketed_word_of_sysfs(tmp_path):
    f = tmp_path / "enabled"
    for text, mode in (("always [madvise] never\n", "madvise"),
                       ("[always] madvise never", "always"), ("always madvise never", None)):
        f.write_text(text)
        assert _machine.huge_pages(f) == mode
    assert _machine.huge_pages(tmp_path / "absent") is None


def _fake_cache(root, index, level, kind, size):
    d = root / f"index{index}"
    d.mkdir(parents=True)
    for name, text in (("level", level), ("type", kind), ("size", size)):
        (d / name).write_text(f"{text}\n")


def test_the_last_level_cache_comes_from_sysfs_then_sysconf_then_a_default(tmp_path, monkeypatch):
    _fake_cache(tmp_path, 0, 1, "Data", "48K")
    _fake_cache(tmp_path, 1, 1, "Instruction", "32K")
    _fake_cache(tmp_path, 2, 2, "Unified", "2048K")
    _fake_cache(tmp_path, 3, 3, "Unified", "260M")
    _fake_cache(tmp_path, 4, 4, "Instruction", "1G")   # not a data cache: left out
    assert _machine.caches(tmp_path) == {1: 48 << 10, 2: 2 << 20, 3: 260 << 20}
    assert _machine.last_level_cache(tmp_path) == (260 << 20, "sysfs L3")
    empty = tmp_path / "none"
    monkeypatch.setattr(_machine.os, "sysconf", lambda name: 8 << 20)
    assert _machine.last_level_cache(empty) == (8 << 20, "sysconf L3")
    monkeypatch.setattr(_machine.os, "sysconf", lambda name: 0)
    assert _machine.last_level_cache(empty) == (_machine.DEFAULT_LLC, "default")
    assert [_machine.parse_size(t) for t in ("32768K", "1M", "512", "2G\n", "big")] == [
        32 << 20, 1 << 20, 512, 2 << 30, None]


def test_a_bad_state_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        report_main.main(["--quick", "--state", "b2b,warm"])
    assert e.value.code == 2 and "error: --state:" in capsys.readouterr().err


def test_only_the_states_asked_for_are_timed():
    r = run_python(None, args=["-m", "fastbn.bench", "--quick", "--threads", "1", "--no-torch",
                               "--rounds", "1", "--only", "bn infer", "--state", "producer,b2b"])
    assert r.returncode == 0, r.stderr
    rows = _rows(r.stdout, 8)
    assert [row[3] for row in rows] == ["producer", "b2b"] * 4
    assert "cold state" not in r.stdout   # no flush without the cold state


def test_each_state_steps_before_every_timed_call():
    x = np.arange(12, dtype=np.float32)
    case = _harness.Case("bn infer", "s", fastbn=lambda: None, inputs=[x])
    assert _harness.state_step(case) is None   # b2b: the contender's own untimed call
    producer = _harness.state_step(dataclasses.replace(case, state="producer"))
    x[:] = -1   # as the kernel's neighbour would leave it: the same bytes come back
    producer()
    np.testing.assert_array_equal(x, np.arange(12, dtype=np.float32))
    flush = _harness.Flush(1 << 20)
    assert _harness.state_step(dataclasses.replace(case, state="cold"), flush) is flush
    flush()
    assert flush.buf.nbytes == 1 << 20 and (flush.buf == 1).all()
    with pytest.raises(ValueError, match="the cold state needs a Flush"):
        _harness.state_step(dataclasses.replace(case, state="cold"))

    calls = []
    t = _harness._interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              rounds=2, lead_below=1.0, before=lambda: calls.append("step"))
    assert set(t) == {"a", "b"}
    assert calls[2:] == ["step", "a", "step", "b", "step", "b", "step", "a"]   # no lead call


@pytest.mark.parametrize("threads", [1, 2])
def test_the_floor_kernel_reads_and_writes_what_it_should(threads):
    from fastbn import _stream

    rng = np.random.default_rng(1)
    # Below and above one block, fastbn's threading threshold and the non-temporal size (2**20).
    for n in (0, 1, 1000, 65536 * 3 + 5, (1 << 20) + 37):
        a, b, c = (rng.integers(-4, 5, n + 1).astype(np.float32) for _ in range(3))
        a, b, c = a[:n], b[:n], c[:n]
        exact = sum(int(v.astype(np.int64).sum()) for v in (a, b, c))
        assert _stream.passes([((a, b, c), None)], threads) == exact
        for shift in (0, 1):   # an output aligned and one that is not
            out = np.full(n + 1, np.nan, np.float32)[shift:shift + n]
            assert _stream.passes([((a, b), None), ((a, b, c), out)], threads) == exact - int(
                c.astype(np.int64).sum())
            np.testing.assert_array_equal(out, a + b + c)
    with pytest.raises(ValueError, match="same size"):
        _stream.passes([((a, b[:-1]), None)], threads)
    with pytest.raises(ValueError, match="float32"):
        _stream.passes([((a.astype(np.float64),), None)], threads)
    with pytest.raises(ValueError, match="1 to 3 inputs"):
        _stream.passes([((a, a, a, a), None)], threads)
    with pytest.raises(ValueError, match="passes"):
        _stream.passes([], threads)


def test_each_floor_moves_the_minimal_traffic_of_its_kernel():
    x = dy = out = np.zeros(4, np.float32)
    expected = {("bn train", "NCHW"): 8, ("bn train", "NHWC"): 12, ("bn train", "NC"): 12,
                ("bn infer", "NCHW"): 8, ("bn infer", "NHWC"): 8, ("bn infer", "NC"): 8,
                ("bn backward", "NCHW"): 12, ("bn backward", "NHWC"): 20,
                ("bn backward", "NC"): 20, ("bn train", "NCDHW"): 8, ("bn infer", "NCDHW"): 8,
                ("bn backward", "NCDHW"): 12, ("norm forward", "groups"): 8,
                ("norm backward", "groups"): 12}
    for (kernel, layout), nbytes in expected.items():
        passes = floor.spec(kernel, layout, x, dy, out)
        assert floor.traffic(passes) == nbytes, (kernel, layout)
        assert passes[-1][1] is out   # the last pass writes the output
    # the fused kernels also read the residual (output pass) or y (every pass of the backward)
    fused = {("bn+relu train", "NCHW", 0): 8, ("bn+relu train", "NC", 0): 12,
             ("bn+add+relu train", "NCHW", 1): 12, ("bn+add+relu train", "NHWC", 1): 16,
             ("bn+relu backward", "NCHW", 1): 16, ("bn+relu backward", "NC", 1): 28}
    for (kernel, layout, n_more), nbytes in fused.items():
        passes = floor.spec(kernel, layout, x, dy, out, more=(x,) * n_more)
        assert floor.traffic(passes) == nbytes, (kernel, layout)
        assert passes[-1][1] is out
    for case in bn_cases.cases(quick=True) + norm_cases.cases(quick=True):
        assert case.floor is not None and case.inputs[0] is case.copy_of
        case.floor()


def _first_array(result):
    """The first array (or tensor) of a contender's result: itself, or the first of its tuple."""
    return result if hasattr(result, "shape") else next(r for r in result if hasattr(r, "shape"))


def test_every_contender_times_its_own_case_s_input():
    # Lambdas written in a loop over the inputs would all read the loop's last input (the NCDHW
    # one): every row would time that input against its own copy, floor and torch call.
    torch = importlib.util.find_spec("torch") is not None
    cases = bn_cases.cases(quick=True, torch=torch) + norm_cases.cases(quick=True, torch=torch)
    assert len({case.inputs[0].shape for case in cases}) >= 6
    for case in cases:
        x = case.inputs[0]
        for name in ("fastbn", "reference"):
            out = _first_array(getattr(case, name)())
            assert out.shape == x.shape, (case.kernel, case.shape, name)
        if case.torch is not None:   # channels-last inputs are permuted views there
            assert _first_array(case.torch()).numel() == x.size, (case.kernel, case.shape)


def test_small_calls_write_one_output_allocated_once_from_their_own_input():
    torch = importlib.util.find_spec("torch") is not None
    cases = small_cases.cases(torch=torch)
    assert sorted(c.kernel for c in cases) == sorted(SMALL_CALLS)
    for case in cases:
        first, second = _first_array(case.fastbn()), _first_array(case.fastbn())
        assert second is first, case.kernel   # the output of every call: allocated once
        assert first.nbytes <= 1 << 15, case.shape   # small: a call's fixed cost decides its time
        ref = _first_array(case.reference())
        assert ref.shape == first.shape and not np.shares_memory(ref, first), case.kernel
        assert np.allclose(first, ref, rtol=1e-4, atol=1e-4), case.kernel
        assert case.roofline is not None and _harness._roofline_parts(case, 2) is None
        if case.torch is not None:
            assert _first_array(case.torch()).numel() == first.size, case.kernel


def test_times_under_a_tenth_of_a_millisecond_keep_their_digits():
    assert [_harness._ms(t) for t in (3.4e-6, 9.87e-5, 1.234e-4, 0.012345, None)] == [
        "0.0034", "0.0987", "0.123", "12.35", ""]


def test_a_full_batch_norm_table_fits_in_120_columns():
    rows = []
    for kernel, shape in (("bn backward", "(32,56,56,64) NHWC f32"),
                          ("bn train", "(4096,1024) NC f32")):
        case = _harness.Case(kernel, shape, fastbn=lambda: None, threads=2, state="producer")
        t = {"fastbn": 0.01234, "reference": 0.12345, "torch": 0.12345, "copyto": 0.01234,
             "floor": 0.001234}
        rows.append(_harness.row(case, t))
    table = _harness.markdown(rows, _harness.columns(bn=True))
    assert max(len(line) for line in table.splitlines()) <= 120


def test_big_inputs_are_at_least_the_size_asked_for():
    nbytes = 4 * (32 << 20)   # 4x a 32 MB last-level cache
    shapes = bn_cases.big_shapes(nbytes)
    assert [(label, shape) for label, shape, _ in shapes] == [
        ("NCHW", (32, 335, 56, 56)), ("NC", (32768, 1024))]   # NCHW: a slab of 401 KB still
    for _, shape, _ in shapes:
        assert 4 * math.prod(shape) >= nbytes
