"""Build steps pyproject.toml cannot express: compile rstwatch/hotloops.pyx (the per-packet loops)
with Cython, and ship the repository's top-level rules/ inside the package as rstwatch/rules."""
import shutil
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildPyWithRules(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "rstwatch" / "rules"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(__file__).parent / "rules", target)


setup(
    ext_modules=cythonize(
        [Extension("rstwatch.hotloops", ["rstwatch/hotloops.pyx"], extra_compile_args=["-O3"])],
        language_level=3,
    ),
    cmdclass={"build_py": BuildPyWithRules},
)
