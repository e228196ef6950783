"""Maps the repository's declarative folders into the package, so a wheel carries them.

targets/ (device profiles) installs as ftedge.profiles and calibration/ (recipes) as
ftedge.recipes: one copy of each in the repository, found the same way in a checkout, an
editable install and a wheel. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["ftedge", "ftedge.*"], exclude=["*__pycache__"]),
              "ftedge.profiles", "ftedge.recipes"],
    package_dir={"ftedge.profiles": "targets", "ftedge.recipes": "calibration"},
    package_data={"ftedge": ["configs/*.yaml"], "ftedge.profiles": ["*.yaml"],
                  "ftedge.recipes": ["*.yaml"]},
)
