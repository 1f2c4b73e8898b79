"""The only code that touches the host: subprocesses (argv lists, timeouts) and thin typed
wrappers over docker, files, btrfs, restic, rclone and accounts. No Django imports."""
