"""What the report runs on: the last-level cache (sizes the cold state's flush) and a description
of the machine for the top of the report.

The last-level cache comes from Linux's sysfs (the highest ``level`` among the data and unified
caches of ``/sys/devices/system/cpu/cpu0/cache/index*``), else
``os.sysconf("SC_LEVEL3_CACHE_SIZE")``, else :data:`DEFAULT_LLC` (32 MiB: the machine fastbn is tuned on; a flush three times that evicts
the last-level cache of most servers' single sockets).
"""
import os
import platform
import re
from pathlib import Path

SYSFS_CACHE = "/sys/devices/system/cpu/cpu0/cache"
SYSFS_THP = "/sys/kernel/mm/transparent_hugepage/enabled"
DEFAULT_LLC = 32 << 20


def parse_size(text):
    """Bytes of a sysfs cache size: "32768K", "1M", "512" (bytes); None if it is not one."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        return None
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def caches(root=SYSFS_CACHE):
    """``{level: bytes}`` of the data and unified caches sysfs lists under ``root`` (one CPU's:
    each level's size as that CPU sees it); ``{}`` without sysfs."""
    out = {}
    for index in sorted(Path(root).glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text().strip())
            size = parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and size:
            out[level] = size
    return out


def last_level_cache(root=SYSFS_CACHE):
    """``(bytes, where from)`` of the last-level cache: sysfs, then sysconf, then the default."""
    found = caches(root)
    if found:
        level = max(found)
        return found[level], f"sysfs L{level}"
    try:
        size = os.sysconf("SC_LEVEL3_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        size = 0
    if size and size > 0:
        return size, "sysconf L3"
    return DEFAULT_LLC, "default"


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else what platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def huge_pages(path=SYSFS_THP):
    """Linux's transparent-huge-page mode (the bracketed word of ``path``: always, madvise or
    never), or None.  Under madvise, NumPy's arrays of 4 MB and more are on 2 MB pages and memory
    that nobody asked that for (torch's allocations) on 4 KB pages, which stream slower."""
    try:
        m = re.search(r"\[(\w+)\]", Path(path).read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def _size(b):
    return f"{b >> 20} MB" if b >= 1 << 20 and not b % (1 << 20) else f"{b >> 10} KB"


def describe(isa, torch_version=None):
    """One line per fact: the CPU, its cores, its caches, the huge-page mode, fastbn's
    instruction set, the versions of NumPy and torch."""
    import numpy as np
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    levels = caches()
    llc, source = last_level_cache()
    cache_text = ", ".join(f"L{lv} {_size(b)}" for lv, b in sorted(levels.items())) or "unknown"
    return [f"CPU: {cpu_model()} ({platform.machine()}), {os.cpu_count()} logical CPUs, "
            f"{usable} usable by this process",
            f"caches (per CPU 0, data/unified): {cache_text}; last level {_size(llc)} ({source})",
            f"transparent huge pages: {huge_pages() or 'unknown'}",
            f"fastbn {_version()} isa {isa}; numpy {np.__version__}; "
            f"torch {torch_version or 'not used'}; Python {platform.python_version()}"]


def _version():
    from fastbn._version import __version__
    return __version__
