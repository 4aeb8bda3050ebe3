"""Build fastbn: Cython glue over plain-C kernels.

Each extension module is one Cython file, its C dispatch/API sources, and kernel bodies that are
compiled once per instruction set (scalar baseline, AVX2, AVX-512 on x86-64) with that set's own
flags.  The module picks one set at import from CPUID, so one build runs on any x86-64.
Set FASTBN_SANITIZE=1 to build with -fsanitize=address,undefined, FASTBN_SANITIZE=thread to build
with -fsanitize=thread (ThreadSanitizer: tests/test_concurrency.py under .ci/run), and
FASTBN_SKIP_AVX512=1 to leave out the AVX-512 kernels.
"""
import os
from concurrent.futures import ThreadPoolExecutor
import platform
import re
import sys
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# (module, Cython glue, dispatch/API C sources, kernel bodies compiled once per instruction set).
# _util holds the process's pool of threads (parallel.c); the kernel modules call it through
# parallel_client.c.
MODULES = [
    ("fastbn._util", "src/fastbn/_util.pyx", ["csrc/parallel.c"], []),   # CPU, extents, threads
    # The normalization family -- batch norm and the core of layer, RMS, group and instance
    # norm -- in one module: one kernel list (csrc/kernels.def, from which
    # kernel_cython_declarations() writes the Cython side), one instruction-set choice
    # (csrc/dispatch.c).  fastbn._batchnorm re-exports its batch-norm glue.
    ("fastbn._norm", "src/fastbn/_norm.pyx",
     ["csrc/dispatch.c", "csrc/batchnorm.c", "csrc/parallel_client.c"],
     ["csrc/batchnorm_kernels.c", "csrc/norm_kernels.c"]),
    ("fastbn._clip", "src/fastbn/_clip.pyx", ["csrc/clip.c", "csrc/parallel_client.c"],
     ["csrc/clip_kernels.c"]),
    ("fastbn._random", "src/fastbn/_random.pyx", ["csrc/init.c", "csrc/parallel_client.c"],
     ["csrc/init_kernels.c"]),
    # The benchmark report's memory floor (fastbn.bench): passes of pure memory traffic.
    ("fastbn._stream", "src/fastbn/_stream.pyx", ["csrc/stream.c", "csrc/parallel_client.c"],
     ["csrc/stream_kernels.c"]),
]
COMMON_SOURCES = ["csrc/cpu.c"]

X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
SANITIZE = os.environ.get("FASTBN_SANITIZE", "").strip().lower()
SANITIZE = "" if SANITIZE in ("", "0") else ("thread" if SANITIZE == "thread" else "address,undefined")

# Flags per instruction set, for GCC/Clang and for MSVC.  Never -march=native.
ISA_FLAGS_GNU = {
    "scalar": [],
    "avx2": ["-mavx2", "-mfma", "-mf16c"],   # f16c: float16 conversions (csrc/half.h)
    "avx512": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl",
               "-mprefer-vector-width=512"],
}
ISA_FLAGS_MSVC = {"scalar": [], "avx2": ["/arch:AVX2"], "avx512": ["/arch:AVX512"]}
# FASTBN_SKIP_AVX512=1: a build without the AVX-512 kernels, for a machine that cannot run them
# (a third less compile time; CI's sanitizer builds on such a host).  Wheels have all three.
SKIP_AVX512 = os.environ.get("FASTBN_SKIP_AVX512", "").strip() not in ("", "0")
ISAS = [isa for isa in ISA_FLAGS_GNU if not (SKIP_AVX512 and isa == "avx512")] if X86 else ["scalar"]


class BuildExt(build_ext):
    """build_ext that first compiles each module's kernel bodies once per instruction set."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:   # the modules too, one per core (pip and python -m build pass no -j)
            self.parallel = os.cpu_count() or 1

    def run(self):
        if self.inplace:   # a compiled module of an older tree (fastbn._batchnorm) shadows the .py
            built = {name.rsplit(".", 1)[1] for name, *_ in MODULES}
            for path in glob("src/fastbn/_*.so") + glob("src/fastbn/_*.pyd"):
                if os.path.basename(path).split(".")[0] not in built:
                    os.remove(path)
        super().run()

    def build_extension(self, ext):
        msvc = self.compiler.compiler_type == "msvc"
        base = ["/O2", "/fp:precise"] if msvc else ["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c99", "-Wno-psabi"]
        if SANITIZE and not msvc:
            # -Og -g1: line tables are enough for the reports' stack traces, and build in a third
            # of -O1 -g's time (figures in docs/robustness.rst and the commit that chose them).
            base = ["-Og", "-g1", "-fno-omit-frame-pointer", "-ffp-contract=off", "-std=c99",
                    f"-fsanitize={SANITIZE}"]
            if SANITIZE != "thread":
                base.append("-fno-sanitize-recover=undefined")
            ext.extra_link_args = ext.extra_link_args + [f"-fsanitize={SANITIZE}"]
        macros = [("FB_X86_ISAS", "1")] if X86 else []
        if X86 and SKIP_AVX512:
            macros.append(("FB_NO_AVX512", "1"))
        ext.define_macros = ext.define_macros + macros
        ext.extra_compile_args = base + (["-pthread"] if not msvc else [])
        if not msvc:
            ext.extra_link_args = ext.extra_link_args + ["-pthread"]
        def compile_for(isa):
            flags = (ISA_FLAGS_MSVC if msvc else ISA_FLAGS_GNU)[isa]
            return self.compiler.compile(
                ISA_SOURCES[ext.name],
                output_dir=os.path.join(self.build_temp, isa),
                macros=macros + [("FB_ISA_SUFFIX", "_" + isa)],
                include_dirs=["csrc"],
                extra_postargs=base + flags,
                depends=ext.depends,
            )
        # The instruction sets' objects are independent compiler runs: one per core at a time
        # (the kernel bodies are most of a build's minutes).
        with ThreadPoolExecutor(max_workers=max(1, min(len(ISAS), os.cpu_count() or 1))) as pool:
            ext.extra_objects = [o for objs in pool.map(compile_for, ISAS) for o in objs]
        super().build_extension(ext)


# (T, S, suffix) of each kernel dtype, as csrc/kernels_dtypes.h expands kernels.def.
KERNEL_DTYPES = (("float", "float", "f32"), ("double", "double", "f64"), ("float", "uint16_t", "f16"),
                 ("float", "uint16_t", "bf16"))


def kernel_cython_declarations(src="csrc/kernels.def", dst="src/fastbn/_kernels_decl.pxi"):
    """Write the Cython declarations of the kernels listed in ``src`` (one
    ``FB_KERNEL(prefix, name, (params), (args))`` a line, S the tensors' type, T the parameters'),
    per dtype."""
    kernel = re.compile(r"^FB_KERNEL\((\w+), (\w+), \((.*?)\), \(.*\)\)$")
    lines = [f"# Generated by setup.py from {src}: do not edit.", 'cdef extern from "kernels.h":']
    for line in open(src):
        m = kernel.match(line.strip())
        if m:
            for ctype, stype, dt in KERNEL_DTYPES:
                params = re.sub(r"\bS\b", stype, re.sub(r"\bT\b", ctype, m[3]))
                lines.append(f"    fb_status {m[1]}_{m[2]}_{dt}({params}) nogil")
    text = "\n".join(lines) + "\n"
    if not os.path.exists(dst) or open(dst).read() != text:
        with open(dst, "w") as f:
            f.write(text)


kernel_cython_declarations()
ISA_SOURCES = {name: isa_sources for name, _, _, isa_sources in MODULES}


def extension(name, pyx, sources, isa_sources):
    return Extension(name, [pyx] + sources + COMMON_SOURCES, include_dirs=["csrc", numpy.get_include()],
                     define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                     depends=glob("csrc/*.h") + glob("csrc/*.def") + isa_sources)


setup(
    ext_modules=cythonize(
        [extension(*m) for m in MODULES],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False,
                             "initializedcheck": False, "cdivision": True},
    ),
    cmdclass={"build_ext": BuildExt},
    package_dir={"": "src"},
    packages=["fastbn", "fastbn.bench", "fastbn.demo"],
)
