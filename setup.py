from pathlib import Path

from setuptools import find_packages, setup

REQUIREMENTS = Path(__file__).with_name("requirements.txt").read_text().splitlines()

setup(
    name="asu",
    version="0.1.0",
    description="Attended sysupgrade server: firmware on demand for OpenWrt",
    # offline_upstream (the stand-in upstream, for make demo, tests and bench) is
    # installed beside asu in a checkout; the server's image copies asu alone.
    packages=find_packages(include=["asu", "asu.*", "offline_upstream"]),
    package_data={
        "offline_upstream": ["data/*.json.gz", "imagebuilder/*"],
        "asu.api.web": ["templates/*.html", "static/*"],
    },
    python_requires=">=3.11.4",  # tarfile extraction filters
    install_requires=[
        line.strip() for line in REQUIREMENTS if line.strip() and line[0] != "#"
    ],
)
