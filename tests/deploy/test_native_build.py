"""The compiled-object cache is keyed by what is compiled, not by how a path is spelt: a library
given as `../lib`, as `/abs/lib` or through a symlink shares its objects."""

from __future__ import annotations

import os
from pathlib import Path

from helpers.commands import require_tools

from tinyhar.deploy import native_build
from tinyhar.deploy.native_build import HOST, compile_sources


def test_a_relative_an_absolute_and_a_symlinked_spelling_share_one_object(
    tmp_path: Path, monkeypatch
) -> None:
    require_tools("gcc", "g++", apt="gcc g++")
    monkeypatch.setenv("TINYHAR_CACHE", str(tmp_path / "cache"))
    lib = tmp_path / "work" / "libs" / "mylib"
    (lib / "inc").mkdir(parents=True)
    (lib / "inc" / "answer.h").write_text("#define ANSWER 42\n")
    (lib / "answer.c").write_text(
        '#include "answer.h"\nint answer(void) { return ANSWER; }\nconst char *where = __FILE__;\n'
    )
    (tmp_path / "link").symlink_to(tmp_path / "work" / "libs")
    (tmp_path / "work" / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work" / "elsewhere")
    lines: list[str] = []
    spellings = [
        (Path("../libs/mylib/answer.c"), Path("../libs/mylib/inc")),
        (lib / "answer.c", lib / "inc"),
        (tmp_path / "link" / "mylib" / "answer.c", tmp_path / "link" / "mylib" / "inc"),
    ]
    objects = [compile_sources(HOST, [src], [inc], log=lines.append) for src, inc in spellings]
    assert objects[0] == objects[1] == objects[2]
    assert len(lines) == 1 and lines[0].startswith("compiling 1 sources")  # compiled once
    assert str(lib / "answer.c").encode() in objects[0][0].read_bytes()  # __FILE__, resolved
    assert objects[0][0].is_relative_to(native_build.objects_cache())
    (lib / "answer.c").write_text("int answer(void) { return 7; }\n")  # other bytes, other key
    assert compile_sources(HOST, [lib / "answer.c"], [lib / "inc"]) != objects[0]
    assert os.path.isfile(objects[0][0])
