"""`tinyhar flash` and the arduino-cli driver, against a FAKE arduino-cli (a script on PATH that
records its arguments and prints what the real one prints); ports are real pseudo-terminals."""

from __future__ import annotations

import json
import os
import pty
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.fw_models import make_run

from tinyhar.cli import main
from tinyhar.deploy import arduino
from tinyhar.run import folder as runs

FAKE_ARDUINO_CLI = r"""#!{python}
# FAKE arduino-cli for tests: records argv (and, in FAKE_CWD_LOG, its working directory),
# answers like arduino-cli 1.x.
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
with open(os.environ["FAKE_CWD_LOG"], "a") as f:
    f.write(json.dumps({{"args": args, "cwd": os.getcwd()}}) + "\n")
state = Path(os.environ["FAKE_STATE"])
state.mkdir(exist_ok=True)
if args[:2] == ["core", "list"]:
    cores = [{{"id": p.name.replace("__", ":")}} for p in state.glob("core_*")]
    print(json.dumps({{"platforms": [{{"id": c["id"][5:]}} for c in cores]}}))
elif args[:2] == ["core", "update-index"]:
    print("Downloading index: package_index.tar.bz2 downloaded")
elif args[:2] == ["core", "install"]:
    (state / ("core_" + args[2].split("@")[0].replace(":", "__"))).touch()
    print("Platform " + args[2] + " installed")
elif args[:2] == ["lib", "list"]:
    libs = [{{"library": {{"name": p.name[4:], "version": "1.0"}}}} for p in state.glob("lib_*")]
    print(json.dumps({{"installed_libraries": libs}}))
elif args[:2] == ["lib", "install"]:
    name = args[-1].split("@")[0].rstrip("/").split("/")[-1]
    if "--git-url" in args:
        if os.environ.get("ARDUINO_LIBRARY_ENABLE_UNSAFE_INSTALL") != "true":
            print("Error: --git-url and --zip-path are disabled by default", file=sys.stderr)
            sys.exit(1)
        name = "Arduino_TensorFlowLite"
    (state / ("lib_" + name)).touch()
    print("Installed " + name)
elif args[0] == "compile":
    out = Path(args[args.index("--output-dir") + 1])
    sketch = Path(args[-1])
    out.mkdir(parents=True, exist_ok=True)
    (out / (sketch.name + ".ino.bin")).write_bytes(b"\x00" * 64)
    print("Sketch uses 312456 bytes (31%) of program storage space. Maximum is 983040 bytes.")
    print("Global variables use 67840 bytes (25%) of dynamic memory, leaving 194304 bytes for "
          "local variables. Maximum is 262144 bytes.")
elif args[0] == "upload":
    if os.environ.get("FAKE_UPLOAD_FAIL"):
        print(os.environ["FAKE_UPLOAD_FAIL"], file=sys.stderr)
        sys.exit(1)
    print("Device       : nRF52840-QIAA\nVerify successful\nDone in 3.1 seconds")
elif args[:2] == ["board", "list"]:
    print(os.environ.get("FAKE_BOARDS", '{{"detected_ports": []}}'))
else:
    print("Error: unknown command " + " ".join(args), file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A FAKE arduino-cli first on PATH; returns a function reading its recorded calls."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    exe = bindir / "arduino-cli"
    exe.write_text(FAKE_ARDUINO_CLI.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "fake_calls.jsonl"
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_CWD_LOG", str(tmp_path / "fake_cwds.jsonl"))
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "fake_state"))
    monkeypatch.delenv("TINYHAR_ARDUINO_CLI", raising=False)
    monkeypatch.setattr(arduino, "serial_ports", lambda: [])  # only the fake's board list counts

    def calls() -> list[list[str]]:
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    return calls


@pytest.fixture
def ptys():
    """Real pseudo-terminals standing in for the board's USB serial ports."""
    opened = []

    def make() -> str:
        master, slave = pty.openpty()
        opened.extend([master, slave])
        return os.ttyname(slave)

    yield make
    for fd in opened:
        os.close(fd)


def _ports_json(*ports: tuple[str, str, str]) -> str:
    return json.dumps(
        {
            "detected_ports": [
                {
                    "port": {
                        "address": addr,
                        "protocol": "serial",
                        "properties": {"vid": f"0x{vid}", "pid": f"0x{pid}"},
                    },
                    "matching_boards": [{"name": "Arduino Nano 33 BLE"}],
                }
                for addr, vid, pid in ports
            ]
        }
    )


def _compiled_run(tmp_path) -> Path:
    run = make_run(tmp_path)
    res = CliRunner().invoke(main, ["build", "--run", str(run)])
    assert res.exit_code == 0, res.output
    return run


def test_build_installs_compiles_and_records_sizes(tmp_path, fake_cli):
    run = _compiled_run(tmp_path)
    calls = fake_cli()
    assert ["core", "install", "arduino:mbed_nano"] in calls
    assert ["lib", "install", "Arduino_LSM9DS1@1.1.1"] in calls
    assert ["lib", "install", "Chirale_TensorFLowLite@2.0.0"] in calls  # Library Manager, no git
    assert not [c for c in calls if "--git-url" in c]
    sketch = run / "firmware" / "nano33ble" / "tinyhar_har"
    compile_call = [c for c in calls if c[0] == "compile"][0]
    assert compile_call == [
        "compile", "--fqbn", "arduino:mbed_nano:nano33ble", "--libraries",
        str(sketch.parent / "libraries"), "--output-dir", str(sketch / "build"), str(sketch),
    ]  # fmt: skip
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    assert rec["compiled"] is True
    assert (rec["flash_used"], rec["ram_used"]) == (312456, 67840)
    assert (rec["flash_max"], rec["ram_max"]) == (983040, 262144)
    # a second build finds everything installed; --no-install does not even look
    CliRunner().invoke(main, ["build", "--run", str(run)])
    assert sum(c[:2] == ["core", "install"] for c in fake_cli()) == 1
    n = len(fake_cli())
    assert CliRunner().invoke(main, ["build", "--run", str(run), "--no-install"]).exit_code == 0
    assert [c[0] for c in fake_cli()[n:]] == ["compile"]


def test_flash_uploads_to_the_one_matching_port(tmp_path, fake_cli, ptys, monkeypatch):
    run = _compiled_run(tmp_path)
    port = ptys()
    other = ptys()
    monkeypatch.setenv("FAKE_BOARDS", _ports_json((port, "2341", "805a"), (other, "0403", "6001")))
    res = CliRunner().invoke(main, ["flash", "--run", str(run)])
    assert res.exit_code == 0, res.output
    assert f"flashed nano33ble on {port}" in res.output
    sketch = run / "firmware" / "nano33ble" / "tinyhar_har"
    upload = [c for c in fake_cli() if c[0] == "upload"]
    assert upload == [
        ["upload", "-p", port, "--fqbn", "arduino:mbed_nano:nano33ble", "--input-dir",
         str(sketch / "build"), str(sketch)]
    ]  # fmt: skip


def _upload_calls(tmp_path: Path) -> list[dict]:
    """The FAKE arduino-cli's uploads, each with its argv and working directory."""
    lines = (tmp_path / "fake_cwds.jsonl").read_text().splitlines()
    return [c for c in map(json.loads, lines) if c["args"][0] == "upload"]


def test_flash_uploads_the_named_run_from_any_working_directory(
    tmp_path, fake_cli, ptys, monkeypatch
):
    """build.json spells the sketch folder relative to where `build` ran; flash finds R's own
    firmware wherever it runs, and never hands arduino-cli a path outside R (not even the
    same-named run of the folder it runs in)."""
    port = ptys()
    monkeypatch.setenv("FAKE_BOARDS", _ports_json((port, "2341", "805a")))
    home = {}
    for name in ("a", "b"):
        folder = tmp_path / name
        make_run(folder / "runs")
        monkeypatch.chdir(folder)  # build as a user does, with a relative --run
        res = CliRunner().invoke(main, ["build", "--run", "runs/run", "--no-measure"])
        assert res.exit_code == 0, res.output
        home[name] = folder / "runs" / "run"
    rec = json.loads((home["a"] / runs.BUILD_JSON).read_text())
    assert rec["sketch_dir"] == str(Path("runs/run/firmware/nano33ble/tinyhar_har"))
    (tmp_path / "c").mkdir()
    for cwd, given in ((tmp_path / "b", home["a"]), (tmp_path / "c", Path("../a/runs/run"))):
        monkeypatch.chdir(cwd)  # b holds a runs/run of its own; c holds nothing
        n = len(_upload_calls(tmp_path))
        res = CliRunner().invoke(main, ["flash", "--run", str(given)])
        assert res.exit_code == 0, res.output
        assert f"model CRC-32 {rec['model_crc32']}" in res.output
        (call,) = _upload_calls(tmp_path)[n:]
        assert call["cwd"] == str(cwd)
        paths = [a for a in call["args"] if "/" in a and a != port]
        assert len(paths) == 2  # --input-dir and the sketch
        for arg in paths:
            resolved = (Path(call["cwd"]) / arg).resolve()
            assert resolved.is_relative_to(home["a"].resolve()), (arg, call["cwd"])
        sketch = (Path(call["cwd"]) / call["args"][-1]).resolve()
        assert sketch == (home["a"] / "firmware" / "nano33ble" / "tinyhar_har").resolve()


def test_flash_refuses_a_stale_binary_and_another_board(tmp_path, fake_cli, ptys, monkeypatch):
    """A build without arduino-cli leaves an earlier compile's binary in build/: that image is
    of another model, and flash says so instead of uploading it under this model's CRC."""
    run = _compiled_run(tmp_path)
    port = ptys()
    monkeypatch.setenv("FAKE_BOARDS", _ports_json((port, "2341", "805a")))
    res = CliRunner().invoke(main, ["flash", "--run", str(run), "--board", "nano33ble_rev2"])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert "built for nano33ble, not nano33ble_rev2" in res.output
    assert "--board nano33ble_rev2" in res.output
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # rebuild where arduino-cli is missing
    assert CliRunner().invoke(main, ["build", "--run", str(run), "--no-measure"]).exit_code == 0
    assert (run / "firmware" / "nano33ble" / "tinyhar_har" / "build").is_dir()
    monkeypatch.setenv("PATH", str(tmp_path / "fakebin"))
    res = CliRunner().invoke(main, ["flash", "--run", str(run)])
    assert res.exit_code != 0 and "no compiled firmware" in res.output
    assert not _upload_calls(tmp_path)


def test_flash_lists_candidates_when_several(tmp_path, fake_cli, ptys, monkeypatch):
    run = _compiled_run(tmp_path)
    a, b = ptys(), ptys()
    monkeypatch.setenv("FAKE_BOARDS", _ports_json((a, "2341", "805a"), (b, "2341", "005a")))
    res = CliRunner().invoke(main, ["flash", "--run", str(run)])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert a in res.output and b in res.output and "--port" in res.output
    assert not [c for c in fake_cli() if c[0] == "upload"]
    ok = CliRunner().invoke(main, ["flash", "--run", str(run), "--port", b])
    assert ok.exit_code == 0 and [c for c in fake_cli() if c[0] == "upload"][0][2] == b


def test_flash_with_no_board_attached(tmp_path, fake_cli):
    run = _compiled_run(tmp_path)
    res = CliRunner().invoke(main, ["flash", "--run", str(run)])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert "no Arduino Nano 33 BLE" in res.output and "2341:805a" in res.output


def test_flash_without_arduino_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.delenv("TINYHAR_ARDUINO_CLI", raising=False)
    res = CliRunner().invoke(main, ["flash", "--run", str(tmp_path)])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert "arduino-cli not found" in res.output and "install.sh" in res.output


def test_flash_without_a_compiled_binary(tmp_path, monkeypatch, fake_cli):
    run = make_run(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # build where arduino-cli is missing
    assert CliRunner().invoke(main, ["build", "--run", str(run)]).exit_code == 0
    monkeypatch.setenv("PATH", str(tmp_path / "fakebin"))
    res = CliRunner().invoke(main, ["flash", "--run", str(run)])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert "no compiled firmware" in res.output and "tinyhar build" in res.output


def test_flash_port_problems(tmp_path, fake_cli, ptys, monkeypatch):
    run = _compiled_run(tmp_path)
    res = CliRunner().invoke(main, ["flash", "--run", str(run), "--port", "/dev/ttyNOPE9"])
    assert res.exit_code != 0 and "does not exist" in res.output
    port = ptys()
    monkeypatch.setenv("FAKE_UPLOAD_FAIL", f"Error: open {port}: permission denied")
    res = CliRunner().invoke(main, ["flash", "--run", str(run), "--port", port])
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code != 0 and len(errors) == 1
    assert "sudo usermod -aG dialout $USER" in errors[0] and port in errors[0]


def test_parse_sizes_and_board_list_formats():
    out = (
        "Sketch uses 125904 bytes (12%) of program storage space. Maximum is 983040 bytes.\n"
        "Global variables use 44816 bytes (17%) of dynamic memory, leaving 217328 bytes for local "
        "variables. Maximum is 262144 bytes.\n"
    )
    assert arduino.parse_sizes(out) == (125904, 983040, 44816, 262144)
    assert arduino.parse_sizes("nothing") == (None, None, None, None)
    old = json.dumps(
        [{"port": {"address": "/dev/ttyACM0", "properties": {"vid": "0x2341", "pid": "0x805A"}}}]
    )
    ports = arduino.parse_board_list(old)
    assert [(p.address, p.vid, p.pid) for p in ports] == [("/dev/ttyACM0", 0x2341, 0x805A)]
    assert (
        arduino.parse_board_list(_ports_json(("COM3", "2341", "005a")))[0].usb_id() == "2341:005a"
    )


def test_a_library_of_another_version_is_noted(tmp_path, fake_cli):
    run = _compiled_run(tmp_path)  # the FAKE reports every installed library as version 1.0
    res = CliRunner().invoke(main, ["build", "--run", str(run)])
    assert res.exit_code == 0
    assert "note: library Arduino_LSM9DS1 1.0 is installed; nano33ble was written for 1.1.1" in (
        res.output
    )
