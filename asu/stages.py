"""The stages a build goes through, as its job reports them to clients polling it.

Shared by the worker, which sets them, and the API, which describes them: the web
process knows the names without loading the build pipeline."""

from __future__ import annotations

#: Finer stages, each mapped to the ``imagebuilder_status`` shown meanwhile: only
#: the five values older LuCI understands (an unknown one breaks its dialog).
STAGES = {
    "init": "init",
    "download_imagebuilder": "download_imagebuilder",
    "unpack_imagebuilder": "unpack_imagebuilder",
    "prepare_imagebuilder": "unpack_imagebuilder",
    "make_info": "calculate_packages_hash",
    "fetch_packages": "calculate_packages_hash",
    "make_manifest": "calculate_packages_hash",
    "make_image": "building_image",
    "sign_images": "building_image",
    "store_images": "building_image",
}
