"""Packaging that pyproject.toml cannot say alone: ``stations/`` ships as ``cryodaq.stations``.

The shipped station files and sweep scripts live at the top of the repository
(``stations/``, where users look for them) and must be inside the installed package too, so
that ``pip install .`` then ``cryodaq demo`` works from any directory. setuptools maps a
package to another folder with ``package_dir``, but its automatic discovery
(``[tool.setuptools.packages.find]``) cannot add a mapped package to what it finds, so the
list of packages is made here: everything ``find_packages`` finds, plus the mapped one.
Everything else (metadata, dependencies, package data) stays in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["cryodaq*", "sim_instruments*"]), "cryodaq.stations",
              "cryodaq.stations.scripts"],
    package_dir={"cryodaq.stations": "stations"},
)
