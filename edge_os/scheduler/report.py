"""Human-readable form of ``SchedulerAPI.status()`` for ``edge-os ps``."""

from __future__ import annotations

from edge_os.scheduler.sizes import format_size


def _temp(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} C"


def format_status(status: dict) -> str:
    """A table of models and a few lines on memory, thermal state, power and the queue."""
    rows = [("MODEL", "KIND", "LOADED", "ACTIVE", "MEMORY", "KV", "THREADS", "IDLE", "KEEP-ALIVE")]
    for m in status["models"]:
        loaded = m["loaded"]
        tflite = m.get("kind") == "tflite"
        rows.append((
            m["name"] + (f" v{m['version']}" if m.get("version") is not None else "")
            + (" (pinned)" if m["pinned"] else "") + (" (replaced, finishing)" if m.get("replaced") else ""),
            m.get("kind", "llm"),
            "yes" if loaded else "no",
            str(m.get("active", 0)),
            format_size(m["resident_bytes"]) if loaded else "-",
            f"{m['kv_reserved_tokens']}/{m['kv_pool_tokens'] or '-'} tok" if loaded and not tflite else "-",
            str(m["threads"]) if loaded and m.get("threads") is not None else "-",
            f"{m['idle_s']:.0f}s" if loaded else "-",
            "forever" if m["keep_alive_s"] is None else f"{m['keep_alive_s']:.0f}s",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]

    for m in status["models"]:
        if (cache := m.get("prefix_cache")) is not None:
            lines.append(f"prefix cache: {m['name']}: {cache['sequences']} prompts kept ({cache['tokens']} tokens), "
                         f"{cache['hits']} hits saved {cache['hit_tokens']} prompt tokens of prefill")
    for p in status.get("periodic", []):
        lines.append(f"periodic: {p['model']} every {p['period_ms']:g} ms: {p['runs']} runs, {p['misses']} missed "
                     f"deadlines ({p['miss_pct']:.2f}%), worst {p['worst_latency_ms']:.2f} ms, "
                     f"{p['errors']} errors; LLM yielded {status.get('llm_yields', 0)} times")
    mem = status["memory"]
    device = (f"; device {format_size(mem['device_available_bytes'])} available of "
              f"{format_size(mem['device_total_bytes'])}") if mem["pooled"] else ""
    budget = format_size(mem["budget_bytes"])
    lines.append(f"memory:   {format_size(mem['accounted_bytes'])} of {budget} budget{device}")

    gov = status["governor"]
    zones = ", ".join(f"{z['name']} {_temp(z['temp_c'])}" for z in status["thermal"]["zones"]) or "no sensors"
    kernel = "; the kernel is throttling" if status["thermal"]["kernel_throttling"] else ""
    lines.append(f"thermal:  {zones} (setpoint {gov['setpoint_c']:.1f} C){kernel}")
    lines.append(f"governor: {gov['level']} - {gov['reason']}; duty {gov['duty']:.0%}")
    power = status["power"]
    battery = f"battery {power['battery_pct']}%" if power["battery_pct"] is not None else "no battery"
    lines.append(f"power:    {battery}, {'on battery' if power['on_battery'] else 'external power'}; {gov['power']}")
    queue = status["queue"]
    lines.append(
        f"queue:    {queue['waiting']} waiting ({queue['interactive']} interactive, {queue['background']} background; "
        f"max {queue['max']}), {status['running']} running, {status['tok_s']:.1f} tok/s"
    )
    return "\n".join(lines)
