"""BTRFS filesystems on loop devices for tests: sparse images, attached, formatted and mounted,
and everything undone afterwards, also when the test fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostops import btrfs
from hostops.run import run

MIB = 1024 * 1024
IMAGE_SIZE = 256 * MIB  # about the least mkfs.btrfs accepts with DUP metadata

needs_loop_devices = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None or shutil.which("losetup") is None,
    reason="needs root, btrfs-progs and util-linux (losetup) to make loop-device filesystems",
)


@dataclass(frozen=True)
class LoopFs:
    mount: str
    devices: tuple[str, ...]


def attach(image: Path, size: int = IMAGE_SIZE) -> str:
    with image.open("wb") as handle:
        handle.truncate(size)  # sparse: nothing is written until the filesystem uses it
    return run(["losetup", "--find", "--show", "--", str(image)], timeout=30).stdout.strip()


def detach(device: str) -> None:
    run(["losetup", "-d", device], timeout=30, check=False)


def umount(target: str) -> None:
    if run(["umount", "--", target], timeout=60, check=False).returncode != 0:
        run(["umount", "-l", "--", target], timeout=60, check=False)


def make_loop_devices(stack: ExitStack, folder: Path, count: int) -> list[str]:
    """``count`` loop devices over sparse images in ``folder``, detached when ``stack`` closes."""
    devices = []
    for index in range(count):
        image = folder / f"disk{index}.img"
        stack.callback(image.unlink, missing_ok=True)
        devices.append(attach(image))
        stack.callback(detach, devices[-1])
    return devices


@contextmanager
def loop_btrfs(
    folder: Path, count: int = 1, profile: str = "single", options: tuple[str, ...] = ()
) -> Iterator[LoopFs]:
    """A fresh BTRFS over ``count`` loop devices mounted at ``folder``/mnt; everything it made is
    unmounted, detached and deleted afterwards, also when the test fails."""
    with ExitStack() as stack:
        devices = make_loop_devices(stack, folder, count)
        metadata = "dup" if profile == "single" else profile
        btrfs.mkfs(devices, data_profile=profile, metadata_profile=metadata, label=f"h4-{profile}")
        target = folder / "mnt"
        target.mkdir()
        btrfs.mount(devices[0], str(target), options)
        stack.callback(umount, str(target))
        yield LoopFs(str(target), tuple(devices))
