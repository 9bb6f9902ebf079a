"""Packaging beyond what pyproject.toml can say: the target descriptors in the top-level
``targets/`` folder ship inside the wheel as the data package ``edge_os.target_descriptors``."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["edge_os*", "firmware_bridge*"]) + ["edge_os.target_descriptors"],
    package_dir={"edge_os.target_descriptors": "targets"},
    package_data={"edge_os.target_descriptors": ["*.toml"]},
)
