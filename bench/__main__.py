"""`make bench`: run every benchmark, print one table, write bench/results/<time>.json."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_test")
    os.environ.setdefault("PORTAL_TEST_DB_SUFFIX", "bench")
    # restic 0.18, which scripts/test-setup.sh unpacks beside Debian 12's 0.14 (as in tests).
    if os.path.exists(RESTIC_0_18):
        os.environ.setdefault("RESTIC_BINARY", RESTIC_0_18)
    import django

    django.setup()


def main() -> int:
    _setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True)
    rows: list[dict[str, Any]] = []
    try:
        from bench import backups, footprint, gate, gpus, metrics, offsite, proxy, workspaces

        rows += gate.run()
        rows += proxy.run()
        rows += gpus.benchmarks()
        rows += workspaces.benchmarks()
        rows += backups.benchmarks()
        rows += offsite.benchmarks()
        rows += metrics.benchmarks()
        rows += footprint.benchmarks()  # idle memory of compose's and `make run`'s processes
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=True)
    _print(rows)
    out = Path(__file__).parent / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"database": test_db, "rows": rows}, indent=2))
    print(f"\nwritten to {out}")
    return 0


def _print(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["name"]) for r in rows)
    print(f"{'benchmark':<{width}}  {'value':>10}  {'target':<10}  baseline")
    for r in rows:
        print(f"{r['name']:<{width}}  {str(r['value']) + ' ' + r['unit']:>10}  {r['target']:<10}  {r['baseline']}")


if __name__ == "__main__":
    sys.exit(main())
