"""The report's progress, on stderr (the tables go to stdout).

On a terminal with tqdm installed (the ``bench`` extra): one bar with the case being timed, its
window and an estimate of the time left, cleared when the report is done.  Otherwise -- stderr
redirected to a file or a CI log, or tqdm missing -- one plain line when each window of each
table starts, so that a log shows where the run is without a line per case.
"""
import os
import sys
import time


def progress(total, file=None):
    """A progress display for ``total`` timed jobs on ``file`` (default ``sys.stderr``): a tqdm
    bar if ``file`` is a terminal and tqdm is installed, else plain lines (see the module)."""
    file = sys.stderr if file is None else file
    if _is_terminal(file):
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return Bar(tqdm, total, file)
    return Lines(total, file)


def _is_terminal(file):
    try:
        return file.isatty()
    except (AttributeError, ValueError):   # no isatty, or a closed file
        return False


class Bar:
    """One tqdm bar: ``start`` names the job about to run and counts the previous one as done."""

    FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}]"
    REST = 45   # columns the format takes besides the description, a short bar included

    def __init__(self, tqdm, total, file):
        # smoothing=0: the rate is the average since the start -- the jobs differ in length, and
        # the list repeats in every window, so the average over the run predicts the rest best.
        self._bar = tqdm(total=total, file=file, leave=False, dynamic_ncols=True, smoothing=0,
                         bar_format=self.FORMAT)
        self._file = file
        self._running = False

    def start(self, table, window, windows, label):
        if self._running:
            self._bar.update(1)
        self._running = True
        where = f"window {window}/{windows}" + ("" if table == "main" else f", {table}")
        text = f"{where}: {label}"
        # A line wider than the terminal wraps, and each update would then print a new line.
        self._bar.set_description_str(_fit(text, _columns(self._file) - self.REST))

    def close(self):
        if self._running:
            self._bar.update(1)
            self._running = False
            self._bar.refresh()   # update() draws at most every 0.1 s: show the final count
        self._bar.close()


class Lines:
    """A plain line when each window of each table starts: where the run is and the time left."""

    def __init__(self, total, file):
        self._total, self._file = total, file
        self._done = -1   # no job started yet
        self._at = None
        self._t0 = time.perf_counter()

    def start(self, table, window, windows, label):
        self._done += 1
        if (table, window) == self._at:
            return
        self._at = (table, window)
        line = f"fastbn.bench: the {table} table, window {window} of {windows}"
        if self._done:
            left = (time.perf_counter() - self._t0) / self._done * (self._total - self._done)
            line += f", {self._done} of {self._total} jobs done, about {_duration(left)} left"
        print(line, file=self._file, flush=True)

    def close(self):
        pass


def _columns(file):
    try:
        return os.get_terminal_size(file.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _fit(text, width):
    """``text`` cut to ``width`` characters (at least 20), "..." marking the cut."""
    width = max(width, 20)
    return text if len(text) <= width else text[:width - 3] + "..."


def _duration(seconds):
    """``seconds`` rounded for a person: "40 s", "3 min 20 s"."""
    s = int(round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60} s"
