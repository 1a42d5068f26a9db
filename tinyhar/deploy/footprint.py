"""What the firmware takes on the board: the arena with its margin, flash and RAM, the budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyhar.board.boards import Board
from tinyhar.board.tflm_library import KernelPlan, load_library, tflm_source
from tinyhar.crc import crc32
from tinyhar.deploy import codegen
from tinyhar.deploy.m4f_image import build_emulated_firmware
from tinyhar.deploy.native_build import CompileError
from tinyhar.errors import TinyharError
from tinyhar.lite.arena import firmware_arena_bytes, measure_arena
from tinyhar.log import Log, inf
from tinyhar.run.records import BuildReport, QuantizeReport


def check_budget(board: Board, model_bytes: int, arena_bytes: int) -> None:
    """Refuse a model whose flatbuffer or arena exceeds the board's budget, in one line."""
    over = []
    for what, size, budget, kind in (
        ("model", model_bytes, board.model_flash_bytes, "model flash"),
        ("arena", arena_bytes, board.arena_ram_bytes, "arena RAM"),
    ):
        if size > budget:
            over.append(
                f"{what} {size / 1024:.1f} KB is {(size - budget) / 1024:.1f} KB over the "
                f"{budget / 1024:.0f} KB {kind} budget"
            )
    if over:
        raise TinyharError(
            f"does not fit {board.name}: {'; '.join(over)}: train a smaller model "
            "(e.g. `tinyhar train --arch tiny`) or pick a bigger board"
        )


def measured_arena(model: bytes, quantize: QuantizeReport | None, log: Log) -> tuple[int, str]:
    """The measured arena: quantize.json's when it belongs to these bytes, else measured now."""
    if quantize is not None and quantize.arena_bytes and quantize.model_crc32 == crc32(model):
        return quantize.arena_bytes, QuantizeReport.FILE

    log("measuring the model's TFLM arena (bisection)")
    return measure_arena(model), "measured now"


def firmware_arena(run: Path, model: bytes, board: str, log: Log = inf) -> int:
    """The arena of this model's firmware: build.json's for this board, else as a build sizes it."""
    build = BuildReport.load_if_present(run)
    if build is not None and build.model_crc32 == crc32(model) and build.board == board:
        if build.arena_bytes:
            return build.arena_bytes
    measured, _ = measured_arena(model, QuantizeReport.load_if_present(run), log)
    return firmware_arena_bytes(measured)


# Without the Cortex-M4F link: the flash of TFLM, tinyhar's code and libc beside the model, and
# the RAM beside the arena, rounded up from the link map of `tiny` (width 64, 11 ops): 98 040 B
# flash with tinyhar's kernels, 121 552 B with the library's (`--kernels library`); ~6.5 KB RAM.
EST_CODE_FLASH = {"tinyhar": 100 * 1024, "library": 120 * 1024}
EST_TINYHAR_RAM = 8 * 1024


def measure_footprint(
    board: Board,
    rendered: codegen.Rendered,
    plan: KernelPlan,
    sketch_name: str,
    libraries: Path | None,
    log: Log,
) -> dict[str, Any]:
    """Flash and RAM of this firmware from its Cortex-M4F link map (all but the Arduino core);
    estimates, labelled so, where the toolchain or the libraries are missing (`why` says which).
    A firmware that does not compile or link is an error: the compiler's first error line."""

    if board.cpu != "Cortex-M4F":
        why = f"the link map is measured for Cortex-M4F boards, {board.name} has a {board.cpu}"
    else:
        try:
            tflm_src = tflm_source(load_library(board.tflm.name), libraries)
            image = build_emulated_firmware(
                [rendered.library_dir / "src", rendered.sketch_dir],
                tflm_src,
                list(plan.library_methods),
                rendered.tree.m4f_dir,
                log,
                name=sketch_name,
            )
        except CompileError as e:
            raise TinyharError(
                f"the generated firmware does not build for the Cortex-M4F ({e}); sources in "
                f"{rendered.library_dir.parent.parent}"
            ) from None
        except TinyharError as e:  # no toolchain or no library: which one, and how to get it
            why = str(e)
        else:
            fp = image.footprint
            groups = {
                g: {"flash": fp[g]["flash"], "ram": fp[g]["ram"]}
                for g in fp
                if g in ("model", "arena", "tflm", "tinyhar", "runtime", "arduino")
            }
            return {
                "measured": True,
                "source": f"Cortex-M4F link map ({image.map_file}); the Arduino core not included",
                "flash": fp["total"]["flash"] - fp["arduino"]["flash"],
                "ram": fp["total"]["ram"] - fp["arduino"]["ram"],
                "groups": groups,
            }
    return {"measured": False, "why": why}


def estimate_footprint(
    model_bytes: int, arena_bytes: int, kernels: str = "tinyhar"
) -> dict[str, Any]:
    """Flash and RAM without a link: model and arena plus the code measured for `tiny` with these
    kernels (`build --kernels`)."""
    return {
        "measured": False,
        "source": "estimate (no Cortex-M4F link): model + arena + typical TFLM and tinyhar sizes",
        "flash": model_bytes + EST_CODE_FLASH[kernels],
        "ram": arena_bytes + EST_TINYHAR_RAM,
    }


def check_footprint(board: Board, fp: dict[str, Any]) -> None:
    """With the Arduino core's share added, the firmware must fit the sketch limits."""
    over = []
    for what, used, core, most in (
        ("flash", fp["flash"], board.core_flash_bytes, board.sketch_flash_bytes),
        ("RAM", fp["ram"], board.core_ram_bytes, board.sketch_ram_bytes),
    ):
        if used + core > most:
            over.append(f"{what} {(used + core) / 1024:.0f} KB of {most / 1024:.0f} KB")
    if over:
        kind = "measured" if fp["measured"] else "estimated"
        raise TinyharError(
            f"does not fit {board.name} ({kind}, with {board.core_flash_bytes // 1024} KB flash "
            f"and {board.core_ram_bytes // 1024} KB RAM for the Arduino core): {'; '.join(over)}: "
            "train a smaller model or pick a bigger board"
        )


def footprint_lines(fp: dict[str, Any], why_above: bool = False) -> list[str]:
    """The firmware's flash and RAM, measured (per part) or estimated, for the build summary;
    `why_above`: the build's log already said why they are estimates."""
    if not fp["measured"]:
        why = "no Cortex-M4F link: why is above" if why_above else fp["why"]
        return [f"footprint    ESTIMATE flash {fp['flash']} B, RAM {fp['ram']} B ({why})"]
    names = {
        "model": "model",
        "arena": "arena",
        "tflm": "TFLM + kernels",
        "tinyhar": "tinyhar",
        "runtime": "libc/libgcc",
    }
    parts = ", ".join(
        f"{names[g]} {fp['groups'][g]['flash']}/{fp['groups'][g]['ram']}" for g in names
    )
    return [
        f"footprint    measured flash {fp['flash']} B, RAM {fp['ram']} B (Cortex-M4F link map, "
        "without the Arduino core)",
        f"             flash/RAM B: {parts}",
    ]


def _use(used: int | None, most: int | None) -> str:
    if used is None:
        return "not reported"
    return f"{used} B" + (f" of {most} B ({100 * used / most:.0f}%)" if most else "")
