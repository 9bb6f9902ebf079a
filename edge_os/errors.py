"""The exceptions edge-os raises for bad input.

Every error carries a one-line message that says what is wrong and how to fix it; the CLI prints
it and exits non-zero, the MQTT bridge sends an ``error`` message.
"""


def printable(text: object, limit: int = 80) -> str:
    """A value from a file, safe inside a one-line message: control characters escaped, bounded."""
    text = str(text)
    short = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    return short + ("..." if len(text) > limit else "")


class EdgeOSError(Exception):
    """Base class: a problem the user can fix. ``code`` is a stable machine-readable name."""

    code = "error"


class InputError(EdgeOSError):
    """A request or argument is invalid (sampling parameters, prompt too long, ...)."""

    code = "invalid_request"


class ModelSourceError(EdgeOSError):
    """A model to import (GGUF file, Hugging Face folder) is missing, corrupt or unsupported."""

    code = "bad_model_source"


class PackageError(EdgeOSError):
    """A model package is missing a file, fails verification, or does not fit this runtime."""

    code = "bad_package"


class TargetError(EdgeOSError):
    """An unknown target, or a package compiled for a different target."""

    code = "bad_target"


class DeviceError(EdgeOSError):
    """A serial device cannot be opened, does not answer, or refuses a request."""

    code = "device_error"


class SchedulerError(EdgeOSError):
    """The scheduler cannot start or be reached: a bad budget, a busy or missing socket, ..."""

    code = "scheduler_error"


class MqttError(EdgeOSError):
    """The MQTT broker URL, credentials or TLS files are wrong, or the broker cannot be used."""

    code = "mqtt"


class EmulationError(EdgeOSError):
    """A device cannot be emulated here: qemu or the userland is missing, or the target is not
    one that runs under emulation."""

    code = "emulation"


class DeployError(EdgeOSError):
    """A device store cannot take an install: not initialised, busy, full, or a transfer failed."""

    code = "deploy_error"


class AuditError(EdgeOSError):
    """The agent's audit log is missing or its hash chain is broken (an entry edited, deleted or moved)."""

    code = "audit_broken"
