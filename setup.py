from setuptools import find_packages, setup

setup(
    name="asu",
    version="0.1.0",
    description="Attended sysupgrade server: firmware on demand for OpenWrt",
    packages=find_packages(include=["asu", "asu.*"]),
    package_data={"asu.offline": ["data/*.json.gz", "imagebuilder/*"]},
    python_requires=">=3.11",
    install_requires=[
        line.strip()
        for line in open("requirements.txt")
        if line.strip() and not line.startswith("#")
    ],
)
