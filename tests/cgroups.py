"""/proc/<pid>/cgroup as the kernel writes it, recorded on hosts running Docker and
containerd, and a helper that lays them out under a fake proc root."""

from __future__ import annotations

from pathlib import Path

CONTAINER_A = "3b5e2f6c0d9a4b8e7f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a"
CONTAINER_B = "9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddccbbaa99887766554433221100"

# cgroup v2, Docker with the systemd cgroup driver (Debian 12, Ubuntu 22.04+).
V2_DOCKER = f"0::/system.slice/docker-{CONTAINER_A}.scope\n"
# cgroup v1 (hybrid hierarchy), Docker with the cgroupfs driver.
V1_DOCKER = (
    "".join(
        f"{n}:{controller}:/docker/{CONTAINER_B}\n"
        for n, controller in [
            (12, "pids"),
            (11, "memory"),
            (10, "cpu,cpuacct"),
            (9, "devices"),
            (8, "freezer"),
            (7, "net_cls,net_prio"),
            (6, "blkio"),
            (5, "perf_event"),
            (4, "hugetlb"),
            (3, "cpuset"),
            (2, "rdma"),
            (1, "name=systemd"),
        ]
    )
    + "0::/system.slice/containerd.service\n"
)
# Read from inside a container with its own cgroup namespace (Docker's default on v2).
V2_PRIVATE_NAMESPACE = f"0::/../docker-{CONTAINER_A}.scope\n"
# A workspace running its own Docker (Sysbox): the host's engine knows the outer container.
V2_NESTED = f"0::/system.slice/docker-{CONTAINER_A}.scope/docker/{CONTAINER_B}\n"
KUBEPODS_V1 = f"11:memory:/kubepods/burstable/pod5f1d2c3b-4a59-4e7f-8a6b-0c1d2e3f4a5b/{CONTAINER_B}\n"
CONTAINERD_V2 = (
    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f1d2c3b_4a59_4e7f_8a6b_0c1d2e3f4a5b.slice/"
    f"cri-containerd-{CONTAINER_A}.scope\n"
)
# Processes of the host itself: a login session (v2), Xorg under the display manager (v1).
HOST_SESSION_V2 = "0::/user.slice/user-1000.slice/session-4.scope\n"
HOST_SERVICE_V1 = (
    "12:pids:/system.slice/gdm.service\n1:name=systemd:/system.slice/gdm.service\n0::/system.slice/gdm.service\n"
)


def write_proc(root: Path, cgroups: dict[int, str]) -> Path:
    """``root/<pid>/cgroup`` for each pid; returns root (the proc_root to pass)."""
    for pid, text in cgroups.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "cgroup").write_text(text)
    return root
