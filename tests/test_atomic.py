"""Interrupted work leaves old files whole (fastbn._atomic, used by the demo's report).

Specification: ``fastbn._atomic.replacing(path)`` / ``write_text`` / ``write_bytes`` write a
temporary file in the target's directory, fsync it and ``os.replace`` it over the target.  A
writer that raises midway, a KeyboardInterrupt, or a process killed (SIGKILL) while writing
leaves the previous file byte for byte as it was; a successful write replaces it whole, keeps its
permission bits, and leaves no temporary file behind.  ``python -m fastbn.demo`` writes its
figures and table through it.
"""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from child import PKG_PARENT
from fastbn import _atomic
from fastbn.demo import report

OLD = b"old content\n" * 100


@pytest.fixture
def target(tmp_path):
    p = tmp_path / "results.md"
    p.write_bytes(OLD)
    os.chmod(p, 0o640)
    return p


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if ".tmp" in n)


def test_write_replaces_whole_and_keeps_the_mode(target):
    _atomic.write_text(target, "new\n")
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert leftovers(target.parent) == []


def test_a_new_file_gets_the_usual_mode(tmp_path):
    p = tmp_path / "fresh.bin"
    _atomic.write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_a_writer_failing_midway_leaves_the_old_file(target, exc):
    with pytest.raises(exc):
        with _atomic.replacing(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half of the new con")
                raise exc("interrupted")
    assert target.read_bytes() == OLD
    assert leftovers(target.parent) == []


def test_the_temporary_file_keeps_the_extension(tmp_path):
    with _atomic.replacing(tmp_path / "figure.png") as tmp:
        assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, "wb").close()


# Ctrl-C raises KeyboardInterrupt as in a terminal, also where the test runner was started as a
# background job without job control, whose children inherit SIGINT ignored (nohup cmd &).
SLOW_WRITER = r"""
import signal, sys, time
from fastbn import _atomic
signal.signal(signal.SIGINT, signal.default_int_handler)
with _atomic.replacing(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        for i in range(10000):
            f.write(b"new" * 1000)
            f.flush()
            if i == 3:
                print("writing", flush=True)
            time.sleep(0.01)
"""


def test_a_process_killed_mid_write_leaves_the_old_file(target):
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=PKG_PARENT))
    try:
        assert p.stdout.readline().strip() == b"writing"
        time.sleep(0.1)
        assert target.read_bytes() == OLD          # mid-write: the reader sees the old file
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=60)
        p.stdout.close()
    assert p.returncode == -signal.SIGKILL
    assert target.read_bytes() == OLD


def test_ctrl_c_mid_write_leaves_the_old_file(target):
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=PKG_PARENT))
    try:
        assert p.stdout.readline().strip() == b"writing"
        os.kill(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert b"KeyboardInterrupt" in err
    assert target.read_bytes() == OLD
    assert leftovers(target.parent) == []


def test_the_demo_report_is_written_atomically(tmp_path, monkeypatch):
    """The demo's write(): a figure that fails midway leaves every old file whole."""
    names = (report.ACCURACY_PNG, report.ACTIVATIONS_PNG, report.RESULTS_MD)
    for n in names:
        (tmp_path / n).write_bytes(b"previous " + n.encode())

    def first_figure(results, path):
        with open(path, "wb") as f:
            f.write(b"\x89PNG half")
    def failing_figure(stds, path):
        with open(path, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "accuracy_figure", first_figure)
    monkeypatch.setattr(report, "activation_figure", failing_figure)
    monkeypatch.setattr(report, "markdown", lambda *a, **k: "table\n")
    with pytest.raises(KeyboardInterrupt):
        report.write(str(tmp_path), [], {}, header="h")
    assert (tmp_path / report.ACCURACY_PNG).read_bytes() == b"\x89PNG half"   # finished: replaced
    for n in names[1:]:
        assert (tmp_path / n).read_bytes() == b"previous " + n.encode()
    assert leftovers(tmp_path) == []
