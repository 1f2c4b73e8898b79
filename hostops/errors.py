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


# --- restic (hostops/restic.py) -------------------------------------------------------------


class ResticFailed(HostOpsError):
    """restic exited with a failure (status 1, or one restic does not document); the message is
    restic's own ``exit_error`` text or its last error lines, never the password."""

    def __init__(self, message: str, *, exit_code: int, argv: list[str] | None = None) -> None:
        self.exit_code, self.argv = exit_code, list(argv or [])
        super().__init__(message)


class RepositoryMissing(ResticFailed):
    """No restic repository at the location (restic's exit 10). Never created implicitly: an
    admin creates it with "Create repository" (restic.init)."""


class RepositoryExists(ResticFailed):
    """``init`` found a repository already at the location; nothing was changed."""


class WrongPassword(ResticFailed):
    """The password file's password opens no key of the repository (restic's exit 12)."""


class RepositoryLocked(ResticFailed, HostOpsTransient):
    """Another restic holds a conflicting lock (exit 11). Transient: a live job finishes and
    lets go, so a retry later works; a lock left by a killed job stays until ``unlock`` (restic
    drops it by itself only once it is stale). ``holder`` is restic's words on who holds it
    ("PID 4242 on gpu1 by root"), ``age_s`` how old the lock is, when restic said so."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int,
        argv: list[str] | None = None,
        holder: str = "",
        age_s: float | None = None,
    ) -> None:
        super().__init__(message, exit_code=exit_code, argv=argv)
        self.holder, self.age_s = holder, age_s


class ResticInterrupted(ResticFailed, HostOpsTransient):
    """restic was interrupted (exit 130, or killed by a signal) before it finished; running it
    again resumes from what the repository already holds."""


class PartialForget(ResticFailed):
    """``forget`` could not remove some of the snapshots it decided to remove; ``groups`` holds
    what restic decided (hostops.restic.ForgetGroup), ``unremoved`` the ids it said it could not
    delete (empty when restic gave no ids)."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int,
        argv: list[str] | None = None,
        groups: object = (),
        unremoved: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, exit_code=exit_code, argv=argv)
        self.groups, self.unremoved = groups, unremoved


class DumpTooLarge(HostOpsError):
    """``dump`` would write more than the bytes allowed; what was written so far is incomplete."""
