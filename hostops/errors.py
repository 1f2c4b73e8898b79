"""Domain errors of host operations. Callers retry only HostOpsTransient."""

from __future__ import annotations


class HostOpsError(Exception):
    """A host operation failed; the message is fit to show an admin."""


class HostOpsTransient(HostOpsError):
    """A failure worth retrying (engine restarting, timeout, temporary resource shortage)."""


class EngineUnreachable(HostOpsTransient):
    """The Docker engine did not answer."""


class ImageMissing(HostOpsError):
    """The image is not present on the host and will not appear by retrying."""


class PortTaken(HostOpsError):
    """A published port is already bound by something else."""


class OutOfMemory(HostOpsTransient):
    """The kernel or engine could not provide the memory asked for."""


class NetworkBusy(HostOpsTransient):
    """A network could not be made for now: concurrent creations kept taking its subnet."""


class SubnetPoolFull(HostOpsError):
    """No free subnet is left in the pool networks are carved from; an admin must widen it."""


class NotFound(HostOpsError):
    """The container (or other object) does not exist."""


class CommandFailed(HostOpsError):
    """A subprocess exited non-zero; carries its argv, exit status and output tail."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr
        tail = (stderr or stdout).strip()[-500:]
        super().__init__(f"{argv[0]} exited {returncode}: {tail}")


class CommandTimeout(HostOpsTransient):
    """A subprocess ran past its timeout and was killed."""


class NvmlUnavailable(HostOpsError):
    """NVML could not be read: the bindings or the driver are missing, or NVML failed. The
    message says which, in words for an admin."""


class NotBtrfs(HostOpsError):
    """The path is not on a BTRFS filesystem (or the device holds none)."""


class NotSubvolume(HostOpsError):
    """The path is on BTRFS but is an ordinary folder, not a subvolume."""


class QuotasDisabled(HostOpsError):
    """Quotas (qgroups) are off on the filesystem; ``btrfs quota enable`` turns them on."""


class DeviceMissing(HostOpsError):
    """A device of a multi-device BTRFS filesystem is absent (failed disk, unplugged, not scanned)."""
