"""The firmware core compiles cleanly for the host and for the Cortex-M4F, with no fused FMA."""

from __future__ import annotations

import subprocess

import pytest
from helpers.commands import require_tools

from tinyhar.resources import templates_dir

ARM = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _compile(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("opt", ["-O0", "-O2", "-Os"])
def test_host_compiles_with_strict_warnings(tmp_path, opt: str) -> None:
    core = templates_dir() / "tinyhar_core.c"
    extra = ["-Wshadow", "-Wconversion", "-Wstrict-prototypes", "-Wmissing-prototypes"]
    _compile(["gcc", *STRICT, *extra, opt, "-c", str(core), "-o", str(tmp_path / "core.o")])


def test_header_is_usable_from_cpp(tmp_path) -> None:
    require_tools("g++", apt="g++")
    src = tmp_path / "use.cpp"
    src.write_text(
        '#include "tinyhar_core.h"\n'
        "static tinyhar_dev_t dev;\n"
        "int main() { tinyhar_rx(&dev, nullptr, 0); return (int)tinyhar_sizeof_dev(); }\n"
    )
    _compile(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(templates_dir()),
              "-fsyntax-only", str(src)])  # fmt: skip


@pytest.mark.parametrize("opt", ["-O2", "-Os", "-O3"])
def test_cortex_m4f_compiles_without_fused_multiply_add(tmp_path, opt: str) -> None:
    require_tools("arm-none-eabi-gcc", apt="gcc-arm-none-eabi libnewlib-arm-none-eabi")
    obj = tmp_path / "core.o"
    # -ffp-contract=fast is what a toolchain's own flags could add; the core must still not fuse
    _compile(["arm-none-eabi-gcc", *ARM, *STRICT, opt, "-ffp-contract=fast", "-c",
              str(templates_dir() / "tinyhar_core.c"), "-o", str(obj)])  # fmt: skip
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True, text=True)
    assert "vmul.f32" in dis.stdout  # the float code is there ...
    for fused in ("vfma", "vfms", "vfnma", "vfnms", "vmla.f32", "vmls.f32"):
        assert fused not in dis.stdout  # ... and never fused
