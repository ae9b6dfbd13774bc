"""The extension's CMake files ship everything the module needs (what is not listed is not packaged)."""

from __future__ import annotations

import re

from slicer_helpers import MODULE_DIR, ROOT

EXTENSION_CMAKE = (ROOT / "CMakeLists.txt").read_text()
MODULE_CMAKE = (MODULE_DIR / "CMakeLists.txt").read_text()


def _cmake_list(text: str, name: str) -> set:
    body = re.search(rf"set\({name}\s+(.*?)\)", text, re.S).group(1)
    return {item.replace("${MODULE_NAME}", "MSTKDSegment") for item in body.split()}


def test_every_module_script_and_resource_is_listed():
    scripts = {
        p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*.py") if "__pycache__" not in p.parts
    }
    resources = {
        p.relative_to(MODULE_DIR).as_posix()
        for p in (MODULE_DIR / "Resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert _cmake_list(MODULE_CMAKE, "MODULE_PYTHON_SCRIPTS") == scripts
    assert _cmake_list(MODULE_CMAKE, "MODULE_PYTHON_RESOURCES") == resources
    assert "WITH_GENERIC_TESTS" in MODULE_CMAKE
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in MODULE_CMAKE


def test_the_extension_has_its_metadata_and_ships_the_engine():
    for variable in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
    ):
        assert re.search(rf"set\({variable} \"[^\"]+\"\)", EXTENSION_CMAKE), variable
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in EXTENSION_CMAKE
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in EXTENSION_CMAKE
    assert "add_subdirectory(MSTKDSegment)" in EXTENSION_CMAKE
    assert "${CMAKE_CURRENT_SOURCE_DIR}/Training/mstkd/*.py" in EXTENSION_CMAKE
    assert "Resources/models" in EXTENSION_CMAKE
    for url_variable, path in (
        ("EXTENSION_ICONURL", "Resources/Icons/MSTKDSegment.png"),
        ("EXTENSION_SCREENSHOTURLS", "Resources/Screenshots/MSTKDSegment-panel.png"),
    ):
        assert path in re.search(rf"set\({url_variable} \"([^\"]+)\"\)", EXTENSION_CMAKE).group(1)
        assert (ROOT / path).is_file(), path


def test_the_versions_the_module_installs_are_the_packages():
    from mstkd.conventions import PHANTOM_REQUIREMENTS, SEGMENT_REQUIREMENTS, TORCH_VERSION_FLOOR

    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    required = {item.lower() for item in re.findall(r'"([^"]+)"', block.group(1))}
    wanted = {r.specifier.lower() for r in (*SEGMENT_REQUIREMENTS, *PHANTOM_REQUIREMENTS)}
    assert wanted <= required, wanted - required
    assert f"torch>={TORCH_VERSION_FLOOR}" in wanted
