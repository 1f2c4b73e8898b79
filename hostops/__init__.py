"""The only code that touches the host: subprocesses (argv lists, timeouts, dry-run) and thin
typed wrappers over docker, btrfs, restic, rclone, NVML and accounts. No Django imports."""
