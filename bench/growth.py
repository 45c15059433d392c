"""Growth from N = 2,000 to 20,000 as in-process CPU per request, robust to a busy machine.

    bin/bench --db sqlite --sizes 2000,20000 --only floor     # seeds both sizes (cached under var/bench/)
    .venv/bin/python bench/growth.py var/bench/sqlite-n2000.sqlite3 var/bench/sqlite-n20000.sqlite3

wrk's latencies on a shared 2-core machine move with the other processes' load, and the growth of a
page (p50 at 20,000 / p50 at 2,000) then measures the load, not the page. Here both databases are read
side by side (one process each, started together, so both see the same load), every read scenario of
bench/prepare.py is requested in process through Django's test client (the same middleware, audit
writes and templates as under gunicorn), and each scenario's figure is the best of five rounds of 20
requests of `time.process_time()` (CPU of the process, SQLite included; another process's load can only
add to it, so the minimum is the least disturbed figure). Works on migrated copies (var/bench/growth-*),
since a page writes its audit events. Prints a markdown table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUNDS, PER_ROUND = 5, 20


def measure(out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kapclinic.benchdata.settings")
    os.environ.setdefault("KAP_ENV", "demo")
    import django

    django.setup()
    import prepare  # bench/prepare.py: the scenarios, their users and paths
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from kapclinic.accounts.models import User

    results: dict[str, list[float]] = {}
    for s in prepare.targets()["scenarios"]:
        if s.get("unavailable") or s["method"] != "GET":
            continue
        client = Client()
        email = f"bench-{s['role'].replace('_', '')}@{prepare.BENCH_DOMAIN}"
        client.force_login(User.objects.get(email=email))
        paths = s["paths"]
        for path in paths:  # warm: every page once
            client.get(path)
        best = float("inf")
        for _ in range(ROUNDS):
            t0 = time.process_time()
            for i in range(PER_ROUND):
                client.get(paths[i % len(paths)])
            best = min(best, (time.process_time() - t0) * 1000 / PER_ROUND)
        with CaptureQueriesContext(connection) as ctx:
            status = client.get(paths[0]).status_code
        results[s["name"]] = [round(best, 1), len(ctx.captured_queries), status]
    out.write_text(json.dumps(results))


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        measure(Path(sys.argv[2]))
        return
    if len(sys.argv) != 3:
        sys.exit("usage: bench/growth.py <small.sqlite3> <large.sqlite3> (the cached seeds; copied first)")
    copies = []
    for index, given in enumerate(sys.argv[1:3]):
        copy = ROOT / "var" / "bench" / f"growth-{index}.sqlite3"
        shutil.copyfile(given, copy)
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{copy}", "KAP_ENV": "demo"}
        env["DJANGO_SETTINGS_MODULE"] = "kapclinic.benchdata.settings"
        migrate = [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"]
        subprocess.run(migrate, env=env, check=True)
        copies.append(copy)
    small, large = copies
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / "small.json", Path(tmp) / "large.json"]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--measure", str(out)],
                env={**os.environ, "DATABASE_URL": f"sqlite:///{db}"},
            )
            for db, out in zip((small, large), outs, strict=True)
        ]
        if any(p.wait() != 0 for p in procs):
            sys.exit("growth: a measurement failed (see above)")
        a, b = (json.loads(o.read_text()) for o in outs)
    for copy in copies:
        copy.unlink()
    print("| scenario | CPU ms/request, small N | large N | growth | queries |")
    print("|---|---|---|---|---|")
    for name in a:
        (cpu_a, q_a, _), (cpu_b, q_b, _) = a[name], b[name]
        print(f"| {name} | {cpu_a} | {cpu_b} | {cpu_b / cpu_a:.2f} | {q_a} / {q_b} |")


if __name__ == "__main__":
    main()
