"""restic 0.18.0 output recorded from real runs (Debian trixie's static binary on Debian 12),
for the parser tests in test_restic.py. Each constant is verbatim, one JSON line per line."""

# ruff: noqa: E501

# backup --json status lines: a slowed 8 MB backup mid-way, then the last two of a small one
BACKUP_STATUS = r"""
{"message_type":"status","percent_done":0.25,"total_files":8,"total_bytes":8000000,"bytes_done":2000000,"current_files":["/big/f1","/big/f4"]}
{"message_type":"status","percent_done":0.9000000999999,"total_files":22,"files_done":19,"total_bytes":2000002,"bytes_done":1800002}
{"message_type":"status","percent_done":1,"total_files":22,"files_done":22,"total_bytes":2000002,"bytes_done":2000002}
""".strip()

# the summary of the first backup of a tree (22 files, 2,000,002 bytes)
BACKUP_SUMMARY_FIRST = r"""
{"message_type":"summary","files_new":22,"files_changed":0,"files_unmodified":0,"dirs_new":3,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":22,"tree_blobs":4,"data_added":2008639,"data_added_packed":2004177,"total_files_processed":22,"total_bytes_processed":2000002,"total_duration":1.024296559,"backup_start":"2026-12-02T13:52:06.969368704Z","backup_end":"2026-12-02T13:52:07.993665263Z","snapshot_id":"b2f2d9803e70315f6d3cd9729c92c21de93e95b40c0abfc7c1be9dae4b9b9b4e"}
""".strip()

# the summary of the second backup of the same tree: the parent was found, every file unmodified
BACKUP_SUMMARY_SECOND = r"""
{"message_type":"summary","files_new":0,"files_changed":0,"files_unmodified":22,"dirs_new":0,"dirs_changed":0,"dirs_unmodified":3,"data_blobs":0,"tree_blobs":0,"data_added":0,"data_added_packed":0,"total_files_processed":22,"total_bytes_processed":2000002,"total_duration":0.751653812,"backup_start":"2026-12-02T13:52:08.104681805Z","backup_end":"2026-12-02T13:52:08.856335627Z","snapshot_id":"9c531a9e939ad669a5e6e1f61d5b732b9f25fb53ab224e5d2db526b2f86cfc14"}
""".strip()

# stderr of a backup that met a write-only /sys file (exit 3)
BACKUP_PARTIAL_STDERR = r"""
{"message_type":"error","error":{"message":"open /sys/class/zram-control/hot_remove: permission denied"},"during":"archival","item":"/sys/class/zram-control/hot_remove"}
{"message_type":"exit_error","code":3,"message":"Warning: at least one source file could not be read"}
""".strip()

# restore --json: a status line of a slowed restore, then a restore's summary
RESTORE_OUTPUT = r"""
{"message_type":"status","percent_done":0,"total_files":9,"total_bytes":8000000}
{"message_type":"summary","total_files":3,"files_restored":3,"total_bytes":2,"bytes_restored":2}
""".strip()

# forget --dry-run --keep-daily 7 of snapshots at 10:00, 11:00 and 12:00 on 2024-03-05 (UTC)
FORGET_DRY_RUN = r"""
[{"tags":["t1"],"host":"h1","paths":null,"keep":[{"time":"2024-03-05T12:00:00Z","parent":"5e0d3e4d1b343eb3ab48e3642cb7af4fabd695cfe143778b1a162af625b6bd29","tree":"c4e47e6e5805143453fc8b26327b6acce5890f49fa63d1e841602eb19a684285","paths":["/tmp/rx/src/a/b"],"hostname":"h1","username":"root","tags":["t1"],"program_version":"restic 0.18.0","summary":{"backup_start":"2026-12-02T13:57:55.172776776Z","backup_end":"2026-12-02T13:57:55.745954793Z","files_new":0,"files_changed":0,"files_unmodified":2,"dirs_new":0,"dirs_changed":0,"dirs_unmodified":3,"data_blobs":0,"tree_blobs":0,"data_added":0,"data_added_packed":0,"total_files_processed":2,"total_bytes_processed":2},"id":"277aff0a49dd5ddf14d83672d0dfd0b0c86409c034454ec9be365164369a05d2","short_id":"277aff0a"},{"time":"2024-03-05T10:00:00Z","tree":"c4e47e6e5805143453fc8b26327b6acce5890f49fa63d1e841602eb19a684285","paths":["/tmp/rx/src/a/b"],"hostname":"h1","username":"root","tags":["t1"],"program_version":"restic 0.18.0","summary":{"backup_start":"2026-12-02T13:57:53.464066756Z","backup_end":"2026-12-02T13:57:54.427557714Z","files_new":2,"files_changed":0,"files_unmodified":0,"dirs_new":3,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":2,"tree_blobs":4,"data_added":1757,"data_added_packed":1384,"total_files_processed":2,"total_bytes_processed":2},"id":"82485ed0312eb0132b1fed9d53742da3cfece13e99ddfddde300ef7b4d639bc3","short_id":"82485ed0"}],"remove":[{"time":"2024-03-05T11:00:00Z","parent":"82485ed0312eb0132b1fed9d53742da3cfece13e99ddfddde300ef7b4d639bc3","tree":"c4e47e6e5805143453fc8b26327b6acce5890f49fa63d1e841602eb19a684285","paths":["/tmp/rx/src/a/b"],"hostname":"h1","username":"root","tags":["t1"],"program_version":"restic 0.18.0","summary":{"backup_start":"2026-12-02T13:57:54.448600988Z","backup_end":"2026-12-02T13:57:55.147985706Z","files_new":0,"files_changed":0,"files_unmodified":2,"dirs_new":0,"dirs_changed":0,"dirs_unmodified":3,"data_blobs":0,"tree_blobs":0,"data_added":0,"data_added_packed":0,"total_files_processed":2,"total_bytes_processed":2},"id":"5e0d3e4d1b343eb3ab48e3642cb7af4fabd695cfe143778b1a162af625b6bd29","short_id":"5e0d3e4d"}],"reasons":[{"snapshot":{"time":"2024-03-05T12:00:00Z","parent":"5e0d3e4d1b343eb3ab48e3642cb7af4fabd695cfe143778b1a162af625b6bd29","tree":"c4e47e6e5805143453fc8b26327b6acce5890f49fa63d1e841602eb19a684285","paths":["/tmp/rx/src/a/b"],"hostname":"h1","username":"root","tags":["t1"],"program_version":"restic 0.18.0","summary":{"backup_start":"2026-12-02T13:57:55.172776776Z","backup_end":"2026-12-02T13:57:55.745954793Z","files_new":0,"files_changed":0,"files_unmodified":2,"dirs_new":0,"dirs_changed":0,"dirs_unmodified":3,"data_blobs":0,"tree_blobs":0,"data_added":0,"data_added_packed":0,"total_files_processed":2,"total_bytes_processed":2},"id":"277aff0a49dd5ddf14d83672d0dfd0b0c86409c034454ec9be365164369a05d2","short_id":"277aff0a"},"matches":["daily snapshot"]},{"snapshot":{"time":"2024-03-05T10:00:00Z","tree":"c4e47e6e5805143453fc8b26327b6acce5890f49fa63d1e841602eb19a684285","paths":["/tmp/rx/src/a/b"],"hostname":"h1","username":"root","tags":["t1"],"program_version":"restic 0.18.0","summary":{"backup_start":"2026-12-02T13:57:53.464066756Z","backup_end":"2026-12-02T13:57:54.427557714Z","files_new":2,"files_changed":0,"files_unmodified":0,"dirs_new":3,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":2,"tree_blobs":4,"data_added":1757,"data_added_packed":1384,"total_files_processed":2,"total_bytes_processed":2},"id":"82485ed0312eb0132b1fed9d53742da3cfece13e99ddfddde300ef7b4d639bc3","short_id":"82485ed0"},"matches":["oldest daily snapshot"]}]}]
""".strip()

# ls --json latest /src/a/b: the snapshot line, the folder, a name with a newline, a name with the bytes ff fe
LS_NODES = r"""
{"time":"2024-03-05T12:00:00Z","parent":"5e0d3e4d1b343eb3ab48e3642cb7af4fabd695cfe143778b1a162af625b6bd29","tree":"c4e47e6e5805143453fc8b26327b6acce5890f49fa63d1e841602eb19a684285","paths":["/tmp/rx/src/a/b"],"hostname":"h1","username":"root","tags":["t1"],"program_version":"restic 0.18.0","summary":{"backup_start":"2026-12-02T13:57:55.172776776Z","backup_end":"2026-12-02T13:57:55.745954793Z","files_new":0,"files_changed":0,"files_unmodified":2,"dirs_new":0,"dirs_changed":0,"dirs_unmodified":3,"data_blobs":0,"tree_blobs":0,"data_added":0,"data_added_packed":0,"total_files_processed":2,"total_bytes_processed":2},"id":"277aff0a49dd5ddf14d83672d0dfd0b0c86409c034454ec9be365164369a05d2","short_id":"277aff0a","message_type":"snapshot","struct_type":"snapshot"}
{"name":"b","type":"dir","path":"/src/a/b","uid":0,"gid":0,"mode":2147484141,"permissions":"drwxr-xr-x","mtime":"2026-12-02T13:52:06.911176427Z","atime":"2026-12-02T13:52:06.911176427Z","ctime":"2026-12-02T13:52:06.911176427Z","inode":2148313,"message_type":"node","struct_type":"node"}
{"name":"new\nline","type":"file","path":"/src/a/b/new\nline","uid":0,"gid":0,"size":1,"mode":420,"permissions":"-rw-r--r--","mtime":"2026-12-02T13:52:06.911176427Z","atime":"2026-12-02T13:52:06.911176427Z","ctime":"2026-12-02T13:52:06.911176427Z","inode":2148334,"message_type":"node","struct_type":"node"}
{"name":"odd\ufffd\ufffd","type":"file","path":"/src/a/b/odd\ufffd\ufffd","uid":0,"gid":0,"size":1,"mode":420,"permissions":"-rw-r--r--","mtime":"2026-12-02T13:52:06.911176427Z","atime":"2026-12-02T13:52:06.911176427Z","ctime":"2026-12-02T13:52:06.911176427Z","inode":2148335,"message_type":"node","struct_type":"node"}
""".strip()

# check --json of a sound repository
CHECK_SUMMARY = r"""
{"message_type":"summary","num_errors":0,"broken_packs":null,"suggest_repair_index":false,"suggest_prune":false}
""".strip()

# cat lock <id>: a backup's (non-exclusive) lock, compacted
CAT_LOCK = r"""
{"time":"2026-12-02T13:52:56.583988171Z","exclusive":false,"hostname":"vm","username":"root","pid":31948}
""".strip()

# stderr of forget while a backup held the repository (exit 11)
EXIT_ERROR_LOCKED = r"""
{"message_type":"exit_error","code":11,"message":"unable to create lock in backend: repository is already locked by PID 31948 on vm by root (UID 0, GID 0)\nlock was created at 2026-12-02 13:52:56 (2.050231071s ago)\nstorage ID 845a2e0c\nthe `unlock` command can be used to remove stale locks"}
""".strip()

# stderr of snapshots on a missing repository (exit 10)
EXIT_ERROR_MISSING = r"""
{"message_type":"exit_error","code":10,"message":"Fatal: repository does not exist: unable to open config file: stat /tmp/rx/nothere/config: no such file or directory\nIs there a repository at the following location?\n/tmp/rx/nothere"}
""".strip()

# stderr of snapshots with a wrong password (exit 12)
EXIT_ERROR_PASSWORD = r"""
{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}
""".strip()

# version --json
VERSION = r"""
{"message_type":"version","version":"0.18.0","go_version":"go1.24.4","go_os":"linux","go_arch":"amd64"}
""".strip()

# stderr of a backup sent SIGINT: restic 0.18.0 exits 1 here, not the documented 130
BACKUP_INTERRUPTED_STDERR = r"""
signal interrupt received, cleaning up
{"message_type":"exit_error","code":1,"message":"Fatal: unable to save snapshot: context canceled"}
""".strip()

# stderr of forget when one snapshot file could not be deleted (chattr +i): exit 0 all the same
FORGET_UNREMOVED_STDERR = r"""
Remove(<snapshot/277aff0a49>) failed: remove repo2/snapshots/277aff0a49dd5ddf14d83672d0dfd0b0c86409c034454ec9be365164369a05d2: operation not permitted
unable to remove snapshot/277aff0a49dd5ddf14d83672d0dfd0b0c86409c034454ec9be365164369a05d2 from the repository
""".strip()

# stats --json --mode raw-data of a small repository with two snapshots
STATS_RAW_DATA = r"""
{"total_size":1138,"total_uncompressed_size":1949,"compression_ratio":1.7126537785588751,"compression_progress":100,"compression_space_saving":41.611082606464855,"total_blob_count":6,"snapshots_count":2}
""".strip()

# stats --json latest --mode restore-size
STATS_RESTORE_SIZE = r"""
{"total_size":2,"total_file_count":5,"snapshots_count":1}
""".strip()
