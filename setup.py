"""Build steps pyproject.toml cannot express: compile rstwatch/hotloops.pyx (the per-packet loops)
rstwatch/track/walkloop.pyx (the walk of each connection that holds a RST) and
rstwatch/report/jsonfill.pyx (JSON Lines rows joined from typed columns) and
rstwatch/rowtexts.pyx (the texts each finding carries: addresses, display filters, Community IDs, ISO times) and
rstwatch/live/afring.pyx (`rstwatch live`'s AF_PACKET ring read into pcapng blocks) with Cython, and ship the repository's top-level rules/ inside the package as rstwatch/rules.

The extension is optional: without a C compiler (or Cython, or Python's headers) the build
says so in one warning and goes on, and rstwatch runs on its numpy twin (rstwatch/hotloops_py.py,
chosen by rstwatch/loops.py). RSTWATCH_NO_EXTENSION=1 skips it on purpose: that is how the
pure, any-platform wheel (py3-none-any) is built.
"""
import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

BUILD_FAILURES = (CCompilerError, CompileError, ExecError, LinkError, PlatformError, OSError)


class BuildPyWithRules(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "rstwatch" / "rules"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(__file__).parent / "rules", target)


class OptionalBuildExt(build_ext):
    """Build the compiled loops if this machine can; never fail the install because it cannot."""

    def run(self):
        try:
            super().run()
        except BUILD_FAILURES as exc:
            _skipped(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except BUILD_FAILURES as exc:
            _skipped(exc)


def _skipped(exc: Exception) -> None:
    print(f"rstwatch: warning: the compiled loops were not built ({type(exc).__name__}: {exc}); "
          "rstwatch will use its slower numpy fallback", file=sys.stderr)


def extensions() -> list:
    if os.environ.get("RSTWATCH_NO_EXTENSION", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:          # an offline build without Cython: still installable
        _skipped(exc)
        return []
    strip = ["-s"] if sys.platform.startswith("linux") else []    # no debug symbols: 1.6 MiB -> ~0.2 MiB
    return cythonize([Extension(name, [source], extra_compile_args=["-O3"], extra_link_args=strip)
                      for name, source in (("rstwatch.hotloops", "rstwatch/hotloops.pyx"),
                                           ("rstwatch.track.walkloop", "rstwatch/track/walkloop.pyx"),
                                           ("rstwatch.report.jsonfill", "rstwatch/report/jsonfill.pyx"),
                                           ("rstwatch.rowtexts", "rstwatch/rowtexts.pyx"),
                                           ("rstwatch.live.afring", "rstwatch/live/afring.pyx"))],
                     language_level=3)


setup(
    ext_modules=extensions(),
    cmdclass={"build_py": BuildPyWithRules, "build_ext": OptionalBuildExt},
)
