"""``edge-os pack``: import a model, quantize it, compile it for a target, write a package."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_os import __version__
from edge_os.convert.importers import open_source
from edge_os.errors import InputError, ModelSourceError
from edge_os.models.registry import get_architecture
from edge_os.package.manifest import Manifest, TargetInfo
from edge_os.package.memory import MemoryFigures
from edge_os.package.reader import host_cpu_flags
from edge_os.package.writer import PackageWriter, check_destination
from edge_os.quantize.formats import GROUP_SIZE, Scheme, get_scheme
from edge_os.quantize.reference import QuantizedWeight, quantize
from edge_os.runtime.chat_template import check_template
from edge_os.targets import Target, check_toolchain, load_target

log = logging.getLogger(__name__)

# x86 ISA extensions that code compiled for "native" may use, by their /proc/cpuinfo names.
_X86_ISA = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
            "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
_ARM_MATTR = {"+neon": "asimd", "+dotprod": "asimddp", "+i8mm": "i8mm", "+sve": "sve"}


@dataclass(frozen=True)
class PackOptions:
    source: Path
    out: Path
    quant: str = "auto"
    target: str = "host"
    name: str | None = None
    force: bool = False
    progress: bool = True
    activations: str = "int16"  # how decode kernels may round activations (edge_os.compile.kernels)
    kv_dtype: str = "auto"  # KV cache pages: auto (the target's choice), float32 or float16
    # Asked before the package is moved into place: true stops packing with KeyboardInterrupt
    # (the CLI's Ctrl-C, in case TVM's C++ swallowed the interrupt while it ran).
    cancelled: Callable[[], bool] | None = None


def _to_format(value, scheme: Scheme):
    """Float 2-D weights are quantized to the scheme's format; vectors stay float32; carried-over
    blocks keep their values, with scales in the scheme's dtype (exact for a GGUF's f16 scales)."""
    if isinstance(value, QuantizedWeight):
        return value.with_scale_dtype(scheme.scale_dtype)
    if value.ndim == 1:
        return value.astype(np.float32, copy=False)
    fmt = scheme.weight_format if value.shape[1] % GROUP_SIZE == 0 else "f32"
    return quantize(value, fmt, scheme.scale_dtype)


def _required_cpu_features(target: Target, tvm_target: dict) -> tuple[str, ...]:
    if target.arch == "x86_64" and target.tvm_target.get("mcpu") == "native":
        return tuple(f for f in _X86_ISA if f in host_cpu_flags())
    return tuple(_ARM_MATTR[m] for m in tvm_target.get("mattr", []) if m in _ARM_MATTR)


def _workspace_bytes(config, prefill_chunk: int = 256, max_batch: int = 8) -> int:
    """Activations of the largest prefill chunk plus logits: a planning figure, not a measurement."""
    per_token = 4 * (4 * config.hidden_size + 3 * config.intermediate_size
                     + (config.num_attention_heads + 2 * config.num_key_value_heads) * config.head_dim)
    return prefill_chunk * per_token + 4 * config.vocab_size * max(max_batch, 2)


def pack(options: PackOptions) -> Path:
    """Pack ``options.source`` into a package directory at ``options.out`` and return it.

    What the options, the paths and the source's header can tell is checked before TVM loads, so
    a wrong argument is reported in a fraction of a second, not after minutes of work."""
    from edge_os.compile import ACTIVATIONS

    started = time.monotonic()
    check_destination(options.out, options.force)
    target = load_target(options.target)
    check_toolchain(target)  # a missing cross compiler is known in milliseconds, not after minutes
    if options.activations not in ACTIVATIONS:
        raise InputError(f"unknown decode activations {options.activations!r}; choose one of {', '.join(ACTIVATIONS)}")
    scheme = get_scheme(options.quant)
    source = open_source(options.source)
    arch = get_architecture(source.architecture)
    config = arch.config_from_hf(source.hf_config)
    arch.check_shapes(source.path, config, {t.name: t.shape for t in source.tensors()})
    chat_template = source.chat_template or arch.chat_template
    check_template(chat_template, source.path)
    # TVM only once the source passed every check: a bad file fails in milliseconds, in little memory.
    import tvm

    from edge_os.compile.build import CompileLimits, compile_model, resolve_tvm_target
    from edge_os.compile.kv_cache import resolve_kv_dtype

    tvm_target = resolve_tvm_target(target.tvm_target)
    kv_dtype = resolve_kv_dtype(options.kv_dtype, tvm.target.Target(tvm_target))
    log.info("packing %s (%s, %d layers) as %s for %s, KV cache in %s", source.path.name, source.architecture,
             config.num_hidden_layers, scheme.name, target.name, kv_dtype)

    with PackageWriter(options.out, overwrite=options.force) as writer:
        formats, not_kept = _write_weights(source, arch, scheme, writer, options.progress)
        log.info("compiling for %s with TVM (this takes a minute)", tvm_target.get("mcpu", target.name))
        library = "model.so"
        # a model may bound its prefill chunks (Gemma 3: not longer than its sliding window)
        limits = CompileLimits(prefill_chunk=min(CompileLimits.prefill_chunk,
                                                 getattr(config, "max_prefill_chunk", CompileLimits.prefill_chunk)))
        specs = compile_model(arch.model_class, config, formats, scheme.scale_dtype, tvm_target,
                              writer.path(library), cross_cc=target.cross_cc, activations=options.activations,
                              limits=limits, kv_dtype=kv_dtype, device_libs=target.device_libs)
        _order_params(writer, specs)
        writer.path("tokenizer.json").write_text(source.tokenizer_json)
        manifest = Manifest(
            name=options.name or source.path.stem,
            architecture=source.architecture,
            config=config.to_json(),
            quantization={"scheme": scheme.name, "scale_dtype": scheme.scale_dtype,
                          "decode_activations": options.activations, "tensors": formats,
                          **({"not_kept": not_kept} if not_kept else {})},
            target=TargetInfo(target.name, target.arch, tvm_target, _required_cpu_features(target, tvm_target)),
            tvm_version=tvm.__version__,
            runtime_version=__version__,
            library=library,
            tokenizer={"file": "tokenizer.json", "bos_token_id": source.bos_token_id,
                       "add_bos_token": source.add_bos_token},
            chat_template=chat_template,
            stop_token_ids=tuple(source.eos_token_ids),
            context_length=config.max_position_embeddings,
            memory=MemoryFigures(
                weight_bytes=sum(p.nbytes for p in writer.params),
                kv_bytes_per_token=config.kv_bytes_per_token(kv_dtype),
                workspace_bytes=_workspace_bytes(config),
            ),
            params=(),
            source={"file": source.path.name},
            limits=limits.to_json(),
            kv_dtype=kv_dtype,
        )
        if options.cancelled is not None and options.cancelled():
            raise KeyboardInterrupt
        dest = writer.commit(manifest)
    log.info("packed %s in %.1f s", dest, time.monotonic() - started)
    return dest


# GGUF types that hold no rounding of their own: giving them a format is quantizing, not "not keeping".
_FLOAT_TYPES = ("F32", "F16", "BF16")


def _write_weights(source, arch, scheme: Scheme, writer: PackageWriter,
                   progress: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Stream tensors: load one, give it its format, fuse, write. Returns name -> format, and for
    the quantized source tensors whose blocks ``scheme`` would keep but could not: name ->
    ``"TYPE -> format"`` (each also logged as a warning)."""
    formats: dict[str, str] = {}
    not_kept: dict[str, str] = {}
    fuser = arch.fuser(scheme.weight_format, scheme.scale_dtype)
    tensors = source.tensors()
    if progress:
        from tqdm import tqdm

        tensors = tqdm(tensors, total=len(source.tensor_names), unit="tensor", desc="quantizing")
    for tensor in tensors:
        loaded = tensor.load(keep_blocks=scheme.carry_over)
        value = _to_format(loaded, scheme)
        if scheme.carry_over and tensor.source_type not in _FLOAT_TYPES and len(tensor.shape) == 2 \
                and not isinstance(loaded, QuantizedWeight):
            target = value.fmt.name if isinstance(value, QuantizedWeight) else "f32"
            not_kept[tensor.name] = f"{tensor.source_type} -> {target}"
        for name, fused in fuser.push(tensor.name, value):
            if isinstance(fused, QuantizedWeight):
                base = name.removesuffix(".weight")
                formats[name] = fused.fmt.name
                if fused.fmt.quantized:
                    for key, array in fused.arrays.items():
                        writer.add_param(f"{base}.{key}", array)
                else:
                    writer.add_param(name, fused.arrays["qweight"])
            else:
                writer.add_param(name, fused)
    fuser.finish()
    for name, parts in getattr(fuser, "requantized", {}).items():
        not_kept[name] = f"{' + '.join(parts)} -> {formats[name]} (fused parts of different formats)"
    for name, change in not_kept.items():
        log.warning("not kept exactly: %s (%s)", name, change)
    return formats, not_kept


def _order_params(writer: PackageWriter, specs) -> None:
    """Put the written parameters in the order the compiled library takes them, checking each."""
    written = {p.name: p for p in writer.params}
    ordered = []
    for spec in specs:
        entry = written.pop(spec.name, None)
        if entry is None:
            raise ModelSourceError(f"the model needs tensor {spec.name}, which the source does not provide")
        if tuple(entry.shape) != tuple(spec.shape) or entry.dtype != spec.dtype:
            raise ModelSourceError(
                f"tensor {spec.name} is {entry.dtype}{list(entry.shape)} in the source but the model "
                f"expects {spec.dtype}{list(spec.shape)}; the config does not match the weights"
            )
        ordered.append(entry)
    if written:
        log.warning("ignoring %d source tensors the model does not use: %s",
                    len(written), ", ".join(sorted(written)[:5]))
    writer.params = ordered
