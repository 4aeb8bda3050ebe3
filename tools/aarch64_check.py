"""Build fastbn for aarch64 with a cross compiler and run its tests there under qemu-aarch64.

    python tools/aarch64_check.py [--work DIR] [-- PYTEST_ARGS...]

On a Debian or Ubuntu x86-64 host, as root: it installs the cross compiler and qemu-user with apt
and adds arm64 to dpkg's architectures (for ``apt-get download``); the rest goes to DIR (default
/tmp/fastbn-aarch64): the distribution's arm64 Python runtime unpacked (``dpkg -x``), aarch64
wheels of NumPy and the test requirements from PyPI. The modules build as setup.py builds them on a
non-x86 machine (its MODULES; the kernels' scalar path only, the same flags), and the tests run in
two qemu processes, each on every other test (FASTBN_SHARD). Default selection: .ci/run's qemu
step's, read from that file. Before them, tools/result_digests.py runs on both machines: every
result's bits must agree. Exits with pytest's status.
"""
import argparse
import ast
import os
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CC = "aarch64-linux-gnu-gcc"
# The arm64 Python runtime and the shared libraries it and the wheels load (Debian 12 names; a
# package another release lacks is reported and skipped).
RUNTIME = ["python{v}-minimal", "libpython{v}-minimal", "libpython{v}-stdlib", "python{v}",
           "libpython{v}-dev", "libc6", "libexpat1", "zlib1g", "libffi8", "libssl3", "libbz2-1.0",
           "liblzma5", "libsqlite3-0", "libgcc-s1", "libstdc++6", "libtinfo6", "libncursesw6",
           "libreadline8", "libuuid1", "libcrypt1", "libdb5.3", "libgdbm6"]
# Test requirements that the qemu selection does not use (the demo's, the typing checks', xdist).
NOT_NEEDED = {"scikit-learn", "matplotlib", "mypy", "pytest-xdist"}


def run(cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup_py_assignments():
    """setup.py's MODULES, COMMON_SOURCES and cythonize directives, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("MODULES", "COMMON_SOURCES"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
        if isinstance(node, ast.keyword) and node.arg == "compiler_directives":
            found["directives"] = ast.literal_eval(node.value)
    return found["MODULES"], found["COMMON_SOURCES"], found["directives"]


def gcc_flags():
    """setup.py's compile flags for GCC (its build_extension's ``base``)."""
    m = re.search(r'else \[("-O3".*?)\]', (ROOT / "setup.py").read_text())
    return ast.literal_eval("[" + m.group(1) + "]")


def qemu_selection():
    """The -k expression and the ignored test files of .ci/run's Nehalem step."""
    text = (ROOT / ".ci/run").read_text().split("NEHALEM_ARGS=", 1)[1]
    k = re.match(r'\(-k "([^"]*)"', text).group(1)
    files = re.search(r"for f in (.*?); do\s+printf -- '--ignore", text, re.S).group(1)
    return k, files.replace("\\", " ").split()


def install_tools(work, pyver):
    missing = [p for p, exe in (("gcc-aarch64-linux-gnu", CC), ("qemu-user", "qemu-aarch64"))
               if subprocess.run(["which", exe], capture_output=True).returncode]
    archs = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                           text=True).stdout.split()
    if "arm64" not in archs:
        run(["dpkg", "--add-architecture", "arm64"])
    run(["apt-get", "update", "-qq"])
    if missing:
        run(["apt-get", "install", "-y", "-qq", *missing])
    debs, sysroot = work / "debs", work / "root"
    debs.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME:
        pkg = name.format(v=pyver) + ":arm64"
        if subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True).returncode:
            print("not in the archive, skipped:", pkg)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg", "-x", deb, sysroot])
    return sysroot


def install_wheels(work, pyver):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test = project["optional-dependencies"]["test"]
    reqs = ["numpy"] + [r for r in test if re.split(r"[<>=!\[ ]", r)[0] not in NOT_NEEDED]
    site = work / "site"
    run([sys.executable, "-m", "pip", "install", "--quiet", "--target", site, "--only-binary=:all:",
         "--implementation", "cp", "--python-version", pyver, "--platform", "manylinux2014_aarch64",
         "--platform", "manylinux_2_28_aarch64", *reqs])
    return site


def build(work, sysroot, site, pyver):
    modules, common, directives = setup_py_assignments()
    try:   # the host's Cython (the generated C is portable), or one fetched for this run
        from Cython.Build import cythonize
    except ImportError:
        run([sys.executable, "-m", "pip", "install", "--quiet", "--target", work / "cython",
             "Cython>=3.0"])
        sys.path.insert(0, str(work / "cython"))
        from Cython.Build import cythonize
    pkg, objdir = work / "pkg", work / "obj"
    run(["rm", "-rf", pkg, objdir])
    pkg.mkdir(parents=True)
    run(["cp", "-r", ROOT / "src/fastbn", pkg / "fastbn"])
    for so in list((pkg / "fastbn").glob("*.so")) + list((pkg / "fastbn").glob("_*.c")):
        so.unlink()
    objdir.mkdir()
    inc = ["-I" + str(site / "numpy/_core/include"), "-I" + str(ROOT / "csrc"),
           "-I" + str(sysroot / f"usr/include/python{pyver}"), "-I" + str(sysroot / "usr/include")]
    base = gcc_flags() + ["-fPIC", "-pthread", "-DNDEBUG", "-fwrapv", "-Wall"]
    suffix = f".cpython-{pyver.replace('.', '')}-aarch64-linux-gnu.so"
    for name, pyx, sources, isa_sources in modules:
        mod = name.rsplit(".", 1)[1]
        cythonize([str(pkg / "fastbn" / Path(pyx).name)], compiler_directives=directives,
                  quiet=True)
        jobs = [(ROOT / s, ["-DFB_ISA_SUFFIX=_scalar"]) for s in isa_sources]
        jobs += [(ROOT / s, []) for s in sources + common]
        jobs += [(pkg / "fastbn" / (mod + ".c"), ["-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION",
                                                  "-Wno-unused-function"])]
        objs = [objdir / f"{mod}-{i}.o" for i in range(len(jobs))]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:   # one compiler run per core
            list(pool.map(lambda job, obj: subprocess.run(
                [CC, *base, *job[1], *inc, "-c", job[0], "-o", obj], check=True), jobs, objs))
        run([CC, "-shared", "-pthread", *objs, "-lm", "-o", pkg / "fastbn" / (mod + suffix)])
    return pkg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/fastbn-aarch64"))
    ap.add_argument("pytest_args", nargs="*")
    a = ap.parse_args()
    work = a.work.resolve()
    # The distribution's arm64 python3 is the interpreter: its version names the packages.
    show = subprocess.run(["apt-cache", "show", "python3"], capture_output=True, text=True).stdout
    pyver = re.search(r"Depends:.*?python(3\.\d+)", show).group(1)
    sysroot = install_tools(work, pyver)
    site = install_wheels(work, pyver)
    pkg = build(work, sysroot, site, pyver)
    # sys.executable a script that runs the interpreter under qemu, so that tests starting
    # `sys.executable` start it there too (no binfmt_misc registration needed).
    custom = work / "custom"
    custom.mkdir(exist_ok=True)
    (custom / "sitecustomize.py").write_text(
        "import os, sys\n"
        "sys.executable = os.environ.get('FASTBN_AARCH64_PYTHON', sys.executable)\n")
    # (its path and modules set here, as tests start it with environments of their own)
    python = work / "python"
    python.write_text("#!/bin/sh\n"
                      f'export PYTHONPATH="{pkg}:{site}:{custom}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
                      f'export FASTBN_AARCH64_PYTHON="{python}"\n'
                      f'exec qemu-aarch64 -L "{sysroot}" "{sysroot}/usr/bin/python{pyver}" "$@"\n')
    python.chmod(0o755)
    rundir = work / "run"
    run(["rm", "-rf", rundir])
    rundir.mkdir()
    run(["cp", "-r", ROOT / "tests", ROOT / "pyproject.toml", rundir])   # pytest's settings too
    if a.pytest_args:
        args = a.pytest_args
    else:
        k, ignored = qemu_selection()
        args = ["-k", k, *[f"--ignore=tests/test_{f}.py" for f in ignored],
                "tests", "--pyargs", "fastbn", "--doctest-modules"]
    run([python, "-c", "import fastbn, platform; print(platform.machine()); fastbn.show_config()"],
        cwd=rundir)
    # The same corpus of calls hashed here and there: every result must have the same bits.
    here, there = (dict(line.split() for line in subprocess.run(
        [py, ROOT / "tools/result_digests.py"], cwd=rundir, check=True, capture_output=True,
        text=True).stdout.splitlines()) for py in (sys.executable, python))
    differ = sorted(k for k in here if here[k] != there.get(k))
    print(f"{len(here)} result digests, differing on aarch64: {differ or 'none'}")
    if differ:
        sys.exit("aarch64 gives other bits than x86-64")
    shards = [subprocess.Popen([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                               env=dict(os.environ, FASTBN_SHARD=f"{i}/2"), cwd=rundir)
              for i in range(2)]
    sys.exit(max(p.wait() for p in shards))


if __name__ == "__main__":
    main()
