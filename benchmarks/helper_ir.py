"""What LLVM optimises when Numba finishes a kernel: its own code, or the helpers linked in.

Numba links the LLVM module of every function a kernel calls (``blas.matmul``,
``arrays.full``, NumPy's ``dot`` glue under them) into the kernel's module and runs its
module passes and machine-code generation on the whole, in every kernel.  This diagnostic
compiles one workload of ``run.py`` in a fresh cache, captures the kernel's module as
Numba is about to optimise it, prints how many LLVM instructions each defined function
holds, then optimises copies of it offline with Numba's own pass managers -- as captured,
and with every function but the kernel, its wrapper and the vector math it inlines
(``vmath``) turned into a declaration -- and times both (``--repeats`` times each, alternately).  The difference is what re-optimising
the helpers costs per kernel.  (Numba internals: written against Numba 0.65-0.68.)

Usage::

    python benchmarks/helper_ir.py softmax
    python benchmarks/helper_ir.py mlp_act --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _capture(name: str):
    """The kernel's LLVM module (text) before Numba's module passes, and Numba's codegen."""
    import llvmlite.binding  # noqa: F401
    from numba.core import codegen

    sys.path.insert(0, str(HERE))
    from run import _import_symgrad, build_graph

    sg = _import_symgrad()
    captured = {}
    original = codegen.CPUCodeLibrary._optimize_final_module

    def spy(library):
        if library.name == "kernel":
            captured["ir"], captured["codegen"] = str(library._final_module), library._codegen
        return original(library)

    codegen.CPUCodeLibrary._optimize_final_module = spy
    try:
        f, wrt = build_graph(sg, name)
        sg.value_and_grad(f, wrt)
    finally:
        codegen.CPUCodeLibrary._optimize_final_module = original
    return captured["ir"], captured["codegen"]


def _kernel_only(ir: str) -> str:
    """``ir`` with every defined function but the kernel, its wrapper and vmath's (which
    the kernel's loops must inline to vectorise) a declaration."""
    out, skipping = [], False
    for line in ir.splitlines():
        if skipping:
            skipping = not line.startswith("}")
            continue
        if line.startswith("define ") and not _kept(line):
            head = line[: line.rfind(")") + 1].replace("define ", "declare ", 1)
            for linkage in (" linkonce_odr", " internal", " private"):
                head = head.replace("declare" + linkage, "declare")
            out.append(head)
            skipping = True
            continue
        out.append(line)
    return "\n".join(out)


def _kept(name: str) -> bool:
    return "symgrad_kernel" in name or "8backends5vmath" in name


def _optimise(ir: str, cg) -> tuple[float, float]:
    """Seconds of Numba's module passes (cheap, then full) and of machine code for ``ir``."""
    import llvmlite.binding as ll

    module = ll.parse_assembly(ir)
    module.verify()
    cheap, cheap_pb = cg._module_pass_manager(
        loop_vectorize=cg._loopvect, slp_vectorize=False, opt=cg._opt_level, cost="cheap")
    full, full_pb = cg._module_pass_manager()
    t0 = time.perf_counter()
    cheap.run(module, cheap_pb)
    full.run(module, full_pb)
    t1 = time.perf_counter()
    cg._tm.emit_object(module)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", help="a workload of benchmarks/run.py")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["SYMGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="symgrad-helper-ir-")
    import llvmlite.binding as ll

    ir, cg = _capture(args.workload)
    sizes = []
    for fn in ll.parse_assembly(ir).functions:
        if not fn.is_declaration:
            sizes.append((sum(1 for b in fn.blocks for _ in b.instructions), fn.name))
    total = sum(n for n, _ in sizes)
    own = sum(n for n, name in sizes if _kept(name))
    print(f"{args.workload}: the kernel's module holds {total} LLVM instructions in "
          f"{len(sizes)} functions; the kernel, its wrapper and vmath {own} ({own / total:.0%})")
    for n, name in sorted(sizes, reverse=True):
        print(f"  {n:6d}  {name[:100]}")
    times = {"as linked": [], "without helpers": []}
    for _ in range(args.repeats):
        times["as linked"].append(_optimise(ir, cg))
        times["without helpers"].append(_optimise(_kernel_only(ir), cg))
    print(f"median of {args.repeats}: module passes / machine code")
    for label, runs in times.items():
        passes = statistics.median(r[0] for r in runs)
        code = statistics.median(r[1] for r in runs)
        print(f"  {label:15s} {passes:.3f} s / {code:.3f} s")


if __name__ == "__main__":
    main()
