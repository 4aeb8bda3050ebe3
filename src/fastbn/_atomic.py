"""Atomic file replacement: a reader (or a crash, or Ctrl-C) never sees a half-written file.

The new content goes to a temporary file in the target's directory (so the final rename stays
on one file system), which is flushed and fsync'ed, then renamed over the target with
``os.replace`` (atomic on POSIX and on Windows).  If anything fails before the rename -- an
exception in the writer, KeyboardInterrupt, a kill -- the target is left as it was, whole; the
temporary file is removed (except after a hard kill, where a hidden ``.NAME.*.tmpEXT`` may stay
beside the target).

``replacing(path)`` is the general form (any writer that takes a path, e.g. matplotlib's
``savefig``); ``write_text`` and ``write_bytes`` are the one-call forms.
"""
import contextlib
import os
import tempfile

__all__ = ["replacing", "write_text", "write_bytes"]


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(directory):
    """Make the rename itself durable (POSIX; directories cannot be opened on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path):
    """Context manager yielding a temporary path to write instead of ``path``.

    On a normal exit the temporary file is fsync'ed and atomically renamed to ``path`` (keeping
    the permission bits of an existing ``path``, else those a new file would get); on an
    exception it is deleted and ``path`` is untouched.  The temporary name keeps the extension
    of ``path``, so writers that infer a format from it (``savefig``) still do.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "table.md")
    >>> with replacing(p) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("new")
    >>> with open(p) as f:
    ...     f.read()
    'new'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    ext = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=f".tmp{ext}")
    os.close(fd)
    try:
        yield tmp
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = _umask_mode()
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:   # the writer may have closed its own handle: fsync anew
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def write_bytes(path, data):
    """Replace ``path`` by ``data`` (bytes) atomically; see :func:`replacing`."""
    with replacing(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text, encoding="utf-8"):
    """Replace ``path`` by ``text`` atomically (newlines written as given); see :func:`replacing`."""
    write_bytes(path, text.encode(encoding))
