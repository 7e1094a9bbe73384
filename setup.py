"""The package list for setuptools (metadata lives in setup.cfg).

Every `clgrad.*` subpackage is found automatically, and the top-level kernels_cl/ folder is
shipped as the package `clgrad.kernels_cl` (setup.cfg maps it); setup.cfg alone cannot combine
`find:` with a package that lives outside the clgrad/ tree."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["clgrad", "clgrad.*"]) + ["clgrad.kernels_cl"])
