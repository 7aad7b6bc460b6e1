"""Packaging for tb_weightnorm.

The frontend (TypeScript in tb_weightnorm_frontend/) is bundled into
tb_weightnorm/plugin/static/index.js at build time, so `pip install .` from a clone
needs Node.js and npm, while a built wheel or an sdist that already holds the
bundle needs neither.
"""

import os
import pathlib
import shutil
import subprocess

from setuptools import Command, find_packages, setup
from setuptools.command.build import build

ROOT = pathlib.Path(__file__).resolve().parent
FRONTEND = ROOT / "tb_weightnorm_frontend"
BUNDLE = ROOT / "tb_weightnorm" / "plugin" / "static" / "index.js"


def _newest_source_mtime() -> float:
    files = [FRONTEND / "package.json", FRONTEND / "package-lock.json"]
    files += list((FRONTEND / "src").rglob("*"))
    return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)


class BuildFrontend(Command):
    """Bundles the frontend with npm when the bundle is missing or stale."""

    description = "build the Weight Health frontend bundle (needs Node.js and npm)"
    user_options = []

    def initialize_options(self):
        pass

    def finalize_options(self):
        pass

    def run(self):
        if not (FRONTEND / "package.json").is_file():
            if not BUNDLE.is_file():
                raise RuntimeError("Neither the frontend sources nor a built bundle are here.")
            return  # an sdist that ships the bundle
        if BUNDLE.is_file() and BUNDLE.stat().st_mtime >= _newest_source_mtime():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "Building tb_weightnorm from source needs Node.js and npm to bundle its "
                "frontend. Install Node.js (>=18), or install a built wheel instead."
            )
        env = dict(os.environ)
        if not (FRONTEND / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True, env=env)
        subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True, env=env)
        if not BUNDLE.is_file():
            raise RuntimeError(f"The frontend build did not produce {BUNDLE}.")


build.sub_commands.insert(0, ("build_frontend", None))

setup(
    name="tb_weightnorm",
    version="0.1.0",
    description="Weight and gradient health of TensorFlow/Keras training, in a TensorBoard tab.",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tb_weightnorm", "tb_weightnorm.*"]),
    package_data={
        "tb_weightnorm.plugin": ["static/*", "http_api.md"],
        "tb_weightnorm.wire.proto": ["*.proto"],
    },
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "numpy",
        "protobuf>=6.31.1,<8",
        "tqdm",  # the demo's progress bars
    ],
    extras_require={
        "pandas": ["pandas"],
        # What the tests import beyond the install: pillow reads the kernel
        # grids' PNGs; setuptools and wheel build the wheel test_packaging checks.
        "test": ["pytest", "pandas", "playwright", "hypothesis", "pillow", "setuptools>=70", "wheel"],
    },
    entry_points={
        "tensorboard_plugins": ["weight_health = tb_weightnorm.plugin:WeightHealthLoader"],
        "console_scripts": ["tb-weightnorm = tb_weightnorm.cli:main"],
    },
    cmdclass={"build_frontend": BuildFrontend},
)
