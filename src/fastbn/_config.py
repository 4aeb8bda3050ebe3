"""Process-wide settings: the thread count and the instruction-set path of the kernels.

Parallel calls run on a pool of helper threads started by the first of them (see
``csrc/parallel.h``).  Between calls the helpers sleep -- nothing spins beside NumPy's BLAS or
torch -- and a fork handler gives a forked child a pool of its own.  Results are bitwise identical
for any thread count.

``ISA_NAMES`` names the instruction-set paths ('scalar', 'avx2', 'avx512') in increasing order of
capability; :func:`set_isa` forces one for every kernel module.
"""
import os

from fastbn import _util
from fastbn._validation import integer

__all__ = ["ISA_NAMES", "set_num_threads", "get_num_threads", "set_isa", "get_isa",
           "available_isas", "show_config"]

ISA_NAMES = ("scalar", "avx2", "avx512")

_kernel_modules: list = []   # Cython kernel modules exposing set_isa/get_isa


def _physical_cores():
    """Physical cores this process may run on (Linux topology), else the logical CPU count."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(base + "physical_package_id") as f1, open(base + "core_id") as f2:
                cores.add((f1.read().strip(), f2.read().strip()))
        except OSError:
            return len(cpus) or 1
    return len(cores) or 1


# The most threads a call uses: the pool's size (csrc/parallel.c, FB_MAX_THREADS).  Larger
# counts, from set_num_threads or OMP_NUM_THREADS, are clamped to it (they would not fit a C int).
_MAX_THREADS = 256


def _default_threads():
    """OMP_NUM_THREADS's first entry if it is a positive decimal integer (clamped to
    _MAX_THREADS), else the physical cores; other values are ignored, as OpenMP runtimes do."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isascii() and env.isdigit() and int(env) >= 1:
        return min(int(env), _MAX_THREADS)
    return min(_physical_cores(), _MAX_THREADS)


_num_threads = _default_threads()


def set_num_threads(n):
    """Set the number of threads the kernels use.

    Parameters
    ----------
    n : int
        Number of threads, at least 1: the most a call uses.  Counts above 256 (the size of the
        thread pool) are clamped to 256.  Calls on fewer than 2**19 elements (2**18 initializer
        values) run on one thread, because starting a thread costs more than it saves there.
        Results do not depend on it, only speed does.

    Raises
    ------
    TypeError
        ``n`` is not an integer (a bool is not).
    ValueError
        ``n`` is less than 1.

    Examples
    --------
    >>> import fastbn
    >>> old = fastbn.get_num_threads()
    >>> fastbn.set_num_threads(1)
    >>> fastbn.get_num_threads()
    1
    >>> fastbn.set_num_threads(10**6)     # clamped to the pool's size
    >>> fastbn.get_num_threads()
    256
    >>> fastbn.set_num_threads(old)
    """
    global _num_threads
    _num_threads = min(integer(n, "n", minimum=1), _MAX_THREADS)


def get_num_threads():
    """Number of threads the kernels use (default: physical cores, or ``OMP_NUM_THREADS``).

    At most 256: larger counts given to :func:`set_num_threads` or in ``OMP_NUM_THREADS`` are
    clamped.  An ``OMP_NUM_THREADS`` that is not a positive decimal integer is ignored.

    Examples
    --------
    >>> import fastbn
    >>> fastbn.get_num_threads() >= 1
    True
    """
    return _num_threads


def _register(module):
    """Called by each kernel module's Python wrapper at import: apply the chosen ISA to it."""
    _kernel_modules.append(module)
    module.set_isa(_isa)


def _isa_index(name):
    if name not in ISA_NAMES:
        raise ValueError(f"isa: expected one of {', '.join(ISA_NAMES)}, got {name!r}")
    return ISA_NAMES.index(name)


def _initial_isa():
    forced = os.environ.get("FASTBN_FORCE_ISA", "").strip().lower()
    if not forced:
        return _util.best_isa()
    isa = _isa_index(forced)
    if not _util.cpu_supports(isa):
        raise RuntimeError(f"FASTBN_FORCE_ISA={forced}: this CPU or build cannot run {forced}")
    return isa


_isa = _initial_isa()


def set_isa(name):
    """Force an instruction-set path ('scalar', 'avx2' or 'avx512') for every kernel.

    Meant for tests and benchmarks: every path gives the same bits, only speed differs.

    Parameters
    ----------
    name : {'scalar', 'avx2', 'avx512'}
        One of :func:`available_isas`; another is a ValueError.

    Examples
    --------
    >>> from fastbn import _config
    >>> saved = _config.get_isa()
    >>> _config.set_isa("scalar")
    >>> _config.get_isa()
    'scalar'
    >>> _config.set_isa(saved)
    """
    global _isa
    isa = _isa_index(name)
    if not _util.cpu_supports(isa):
        raise ValueError(f"isa: {name} cannot run on this CPU or build")
    for module in _kernel_modules:
        module.set_isa(isa)
    _isa = isa


def get_isa():
    """Name of the instruction-set path in use.

    Examples
    --------
    >>> from fastbn import _config
    >>> _config.get_isa() in _config.available_isas()
    True
    """
    return ISA_NAMES[_isa]


def available_isas():
    """Instruction-set paths that can run here, in increasing order.

    Examples
    --------
    >>> from fastbn import _config
    >>> _config.available_isas()[0]
    'scalar'
    """
    return [name for i, name in enumerate(ISA_NAMES) if _util.cpu_supports(i)]


def show_config():
    """Print the build, the instruction set in use and the thread count.

    Examples
    --------
    >>> import fastbn
    >>> fastbn.show_config()  # doctest: +ELLIPSIS
    fastbn ...
    """
    import platform

    import numpy as np

    from fastbn import __version__
    print(f"fastbn {__version__}")
    print(f"  python        {platform.python_version()} ({platform.machine()})")
    print(f"  numpy         {np.__version__}")
    print(f"  isa in use    {get_isa()}  (available: {', '.join(available_isas())};"
          f" FASTBN_FORCE_ISA={os.environ.get('FASTBN_FORCE_ISA', '')!r})")
    print(f"  threads       {get_num_threads()}  (a pool of helpers, asleep between calls;"
          f" physical cores {_physical_cores()})")
