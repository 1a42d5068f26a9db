"""Instructions and arena of tinyhar's own SOFTMAX, MEAN, BATCH_MATMUL, ADD and MUL kernels
against the Arduino TFLM library's (Chirale_TensorFLowLite 2.0.0: CMSIS-NN softmax, reference MEAN
and broadcast ADD/MUL) and the scalar BATCH_MATMUL tinyhar had before, on the emulated Cortex-M4F
(QEMU mps2-an386, -icount shift=0: one instruction per ns, SysTick at 25 MHz = 40 instructions per
tick, read by a TFLM MicroProfilerInterface around every node).

One model holds the attention block of `tiny` at each shape (width 64 and 12, T = 50 and 25): the
scores BATCH_MATMUL (adj_y), SOFTMAX over them, the probs x v BATCH_MATMUL, the temporal MEAN, and
the unfolded batch norm (MUL and ADD of a [C] constant against [1, 1, 2T, C]), quantized as a
trained `tiny` is. The same model runs with the library's kernels, with tinyhar's, with tinyhar's
compiled at -Os (their `#pragma GCC optimize("O2")` removed), and with one of tinyhar's kernels at a
time in the library's place (for the arena each adds), each on the same random inputs.

    PYTHONPATH=. python benchmarks/kernel_ops.py [--runs 2] [--libraries DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import kernel_harness as K  # noqa: E402

SHAPES = [(64, 50), (12, 50), (64, 25), (12, 25)]  # (width, T)
# The scalar BATCH_MATMUL kernel before the SIMD one (main at the start of issue 19).
OLD_BATCH_MATMUL = ("91f1a1b", "firmware_templates/kernels/tinyhar_batch_matmul.cpp")
# Quantization of a trained `tiny` (width 64): LSTM output, scores, probs, attention output,
# temporal mean; conv output, batch-norm MUL constant and output, ADD constant and output.
Q_SEQ, Q_SCORES, Q_PROBS = (0.00784307, 0), (0.22088413, -93), (1 / 256, -128)
Q_ATT, Q_POOL = (0.00784263, -1), (0.04199941, -93)
Q_CONV, Q_MULC, Q_MUL = (0.04219012, -128), (0.04009912, -128), (0.04592350, -107)
Q_ADDC, Q_ADD = (0.00373338, 127), (0.04425482, -106)


def attention_blocks(seed: int = 0) -> tuple[bytes, list[tuple[str, tuple[int, int], int]]]:
    """The model, and for each node in order: (op, (width, T), its work: MACs or elements)."""
    rng = np.random.default_rng(seed)
    tensors: list[K.Tensor] = []
    ops: list[tuple] = []
    outputs: list[int] = []
    work: list[tuple[str, tuple[int, int], int]] = []

    def tensor(shape, q, dtype="int8", data=None) -> int:
        tensors.append(K.Tensor(tuple(shape), dtype, q[0], q[1], data))
        return len(tensors) - 1

    for width, t in SHAPES:
        shape = (width, t)
        x = tensor((1, t, width), Q_SEQ)
        scores = tensor((1, t, t), Q_SCORES)
        probs = tensor((1, t, t), Q_PROBS)
        att = tensor((1, t, width), Q_ATT)
        axis = tensor((), (0.0, 0), "int32", np.array(1, np.int32))
        pooled = tensor((1, width), Q_POOL)
        adj = schema.BatchMatMulOptionsT()
        adj.adjY = True
        ops.append(("BATCH_MATMUL", [x, x], [scores], adj))
        ops.append(("SOFTMAX", [scores], [probs], _softmax_options()))
        ops.append(("BATCH_MATMUL", [probs, x], [att], schema.BatchMatMulOptionsT()))
        ops.append(("MEAN", [att, axis], [pooled], schema.ReducerOptionsT()))
        work += [
            ("BATCH_MATMUL", shape, t * t * width),
            ("SOFTMAX", shape, t * t),
            ("BATCH_MATMUL", shape, t * t * width),
            ("MEAN", shape, t * width),
        ]
        outputs.append(pooled)
        conv = tensor((1, 1, 2 * t, width), Q_CONV)
        mulc = tensor((width,), Q_MULC, data=rng.integers(-128, 128, width, dtype=np.int8))
        mul = tensor((1, 1, 2 * t, width), Q_MUL)
        addc = tensor((width,), Q_ADDC, data=rng.integers(-128, 128, width, dtype=np.int8))
        add = tensor((1, 1, 2 * t, width), Q_ADD)
        ops.append(("MUL", [conv, mulc], [mul], schema.MulOptionsT()))
        ops.append(("ADD", [mul, addc], [add], schema.AddOptionsT()))
        work += [("MUL", shape, 2 * t * width), ("ADD", shape, 2 * t * width)]
        outputs.append(add)
    return K.graph_model(tensors, ops, outputs), work


def _softmax_options():
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    return options


def old_batch_matmul(out: Path) -> Path:
    """The scalar kernel's source from git history."""
    commit, path = OLD_BATCH_MATMUL
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out.mkdir(parents=True, exist_ok=True)
    (out / "tinyhar_batch_matmul.cpp").write_text(text)
    return out / "tinyhar_batch_matmul.cpp"


def at_os(out: Path) -> list[Path]:
    """Copies of tinyhar's kernels without their -O2 pragma: the sketch's -Os."""
    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in K.OWN_SOURCES:
        text = (K.KERNELS / name).read_text()
        (out / name).write_text(text.replace('#pragma GCC optimize("O2")', ""))
        copies.append(out / name)
    return copies


def text_bytes(objects: list[Path]) -> dict[str, int]:
    """.text bytes of each object (arm-none-eabi-size)."""
    out = subprocess.run(
        ["arm-none-eabi-size", *map(str, objects)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[1:]
    return {Path(line.split()[-1]).stem: int(line.split()[0]) for line in out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="invocations per configuration")
    ap.add_argument("--libraries", type=Path, default=None, help="Arduino libraries folder")
    args = ap.parse_args()
    libraries = args.libraries or K.libraries_root()
    model, work = attention_blocks()
    inputs = K.random_inputs(model, args.runs, seed=1)
    want = K.tflm_outputs(model, inputs)
    library_ops = K.OP_SOFTMAX | K.OP_MEAN | K.OP_MUL | K.OP_ADD
    own_ops = K.OWN_SOFTMAX | K.OWN_MEAN | K.OWN_MUL | K.OWN_ADD
    swaps = {
        "SOFTMAX": (K.OP_SOFTMAX, K.OWN_SOFTMAX),
        "MEAN": (K.OP_MEAN, K.OWN_MEAN),
        "ADD": (K.OP_ADD, K.OWN_ADD),
        "MUL": (K.OP_MUL, K.OWN_MUL),
    }
    results, arenas, sizes = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="tinyhar-kernel-ops-") as tmp:
        root = Path(tmp)
        own = [K.KERNELS / s for s in K.OWN_SOURCES]
        old = [old_batch_matmul(root / "old"), *own[1:]]
        configs = {
            "library": (library_ops, old),
            "tinyhar": (own_ops, own),
            "tinyhar -Os": (own_ops, at_os(root / "os")),
            "BATCH_MATMUL": (library_ops, own),
        }
        for op, (theirs, ours) in swaps.items():
            configs[op] = (library_ops & ~theirs | ours, old)
        for name, (ops, kernels) in configs.items():
            t0 = time.time()
            out = root / name.replace(" ", "_")
            elf = K.build_qemu_image(libraries, out, model, inputs, ops, kernels=kernels)
            run = K.run_qemu_image(elf, model, args.runs, timeout=600)
            if run.rc != K.RUN_OK:
                print(f"{name}: the harness returned {run.rc}:\n{run.text[-2000:]}")
                return 1
            same = int(np.count_nonzero(run.outputs != want))
            print(
                f"{name}: arena {run.arena} bytes, output 0 differs from the Python TFLM "
                f"interpreter in {same} of {want.size} bytes ({time.time() - t0:.0f} s)"
            )
            arenas[name] = run.arena
            if name in ("library", "tinyhar", "tinyhar -Os"):
                results[name] = run
            if name.startswith("tinyhar"):
                sizes[name] = text_bytes([out / f"{Path(k).stem}_cpp.o" for k in kernels])
    print()
    print("instructions per inference on the emulated Cortex-M4F (per MAC or per element)")
    header = f"{'op':<13}{'width':>6}{'T':>4}{'work':>8}"
    for name in results:
        header += f"{name:>24}"
    print(header)
    for node, (op, (width, t), units) in enumerate(work):
        row = f"{op:<13}{width:>6}{t:>4}{units:>8}"
        for run in results.values():
            assert run.nodes[node][0] == op, (run.nodes[node], op)
            n = run.instructions(node, args.runs)
            row += f"{n:>15,.0f} ({n / units:5.1f})"
        print(row)
    print()
    print("totals per shape (BATCH_MATMUL x2 + SOFTMAX + MEAN; + MUL + ADD)")
    for width, t in SHAPES:
        row = f"  width {width:>2}, T {t}:"
        for name, run in results.items():
            per_op = {op: 0.0 for op in ("attention", "batch norm")}
            for i, (op, s, _) in enumerate(work):
                if s == (width, t):
                    part = "batch norm" if op in ("MUL", "ADD") else "attention"
                    per_op[part] += run.instructions(i, args.runs)
            row += f"  {name} {per_op['attention']:,.0f} + {per_op['batch norm']:,.0f}"
        print(row)
    print()
    print("arena bytes (Cortex-M4F) each of tinyhar's kernels adds in the library's place,")
    print("over the model's four attention blocks and batch norms:")
    for op in ["BATCH_MATMUL", *swaps]:
        print(f"  {op:<13}{arenas[op] - arenas['library']:+6d}")
    print(f"  all          {arenas['tinyhar'] - arenas['library']:+6d}")
    print()
    for name, per_file in sizes.items():
        print(f".text bytes, {name}: " + ", ".join(f"{k} {v}" for k, v in per_file.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
