"""The Relax compilation pipeline: one flat sequence of numbered phases.

Phase 1 picks kernels for the target (tagged reference kernels may be replaced by faster ones)
and, on CPUs, gives SiLU a vectorizable exponential; phase 2 legalizes and fuses, phase 3 schedules
what is still unscheduled (for the CPU by ``schedule``, for GPUs by TVM's dlight rules), phase 4
lowers to the VM. Model code never sees any of this.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.s_tir import dlight as dl

import edge_os.compile.kernels.library  # noqa: F401  (registers the kernel families)
from edge_os.compile.fast_math import fast_activations
from edge_os.compile.fuse_add_norm import fuse_add_rms_norm
from edge_os.compile.kernels import select_kernels
from edge_os.compile.schedule import schedule_cpu_functions
from edge_os.compile.vm_reuse import reuse_shapes_and_views


def build_pipeline(tvm_target: tvm.target.Target, activations: str = "float32"):
    """The pipeline for ``tvm_target``. ``activations`` says how far decode kernels may round
    activations (see ``edge_os.compile.kernels``). float32 (the default) keeps decode equal to
    prefill to float rounding. int16 runs decode about twice as fast on AVX2 and moves SmolLM2's
    logits by ~0.002 on average (the tiny test model's by up to 6e-4); int8 is llama.cpp's choice
    and moves them by ~0.5."""
    @tvm.transform.module_pass(opt_level=0, name="edge_os.pipeline")
    def _pipeline(mod: tvm.ir.IRModule, _ctx: tvm.transform.PassContext) -> tvm.ir.IRModule:
        with tvm_target:
            # 1. kernels and libraries
            mod = relax.backend.DispatchSampling()(mod)
            mod = relax.backend.DispatchSortScan()(mod)
            mod = select_kernels(mod, tvm_target, activations)
            if tvm_target.kind.name == "llvm":
                mod = fast_activations(mod)
            # 2. legalize and fuse the small operators into few kernels (chains of reshapes first
            # collapse: each one left is a VM instruction per layer and step; a residual add and
            # the norm of its sum become one kernel)
            mod = tvm.transform.Sequential([
                relax.transform.RemoveRedundantReshape(),
                relax.transform.CanonicalizeBindings(),
                fuse_add_rms_norm,
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
                relax.transform.DeadCodeElimination(),
            ])(mod)
            # 3. schedule every kernel that nobody scheduled (threads, vectors; GPU threads and
            # blocks by TVM's dlight rules, most specific first)
            if tvm_target.kind.name == "llvm":
                mod = schedule_cpu_functions(mod, tvm_target)
            else:
                mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(),
                                              dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                              dl.gpu.Fallback())(mod)
            # 4. lower to the VM. No KillAfterLastUse: storage is planned statically (the same few
            # buffers for any number of layers), and its ~1100 kill instructions per decode step
            # were a third of the VM's work. CallTIRRewrite binds each kernel's result to its
            # output buffer (``lv = alloc``); canonicalized away, that is not a register copy
            # instruction per kernel and step. Each symbolic shape, planned view and reshape is then
            # made once per function, not once per layer (``vm_reuse``: 2,159 -> 865 a SmolLM2 step).
            mod = tvm.transform.Sequential([
                relax.transform.RewriteDataflowReshape(),
                relax.transform.ToNonDataflow(),
                relax.transform.RemovePurityChecking(),
                relax.transform.CallTIRRewrite(),
                relax.transform.CanonicalizeBindings(),
                relax.transform.DeadCodeElimination(),
                relax.transform.StaticPlanBlockMemory(),
                relax.transform.LowerAllocTensor(),
                relax.transform.LowerRuntimeBuiltin(),
                reuse_shapes_and_views,
                relax.transform.ComputePrimValue(),
                relax.transform.VMShapeLower(),
                relax.transform.AttachGlobalSymbol(),
            ])(mod)
        return mod

    return _pipeline
