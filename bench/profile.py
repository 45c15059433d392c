"""Profile one page in-process against a seeded database: SQL statements and a pyinstrument profile.

    DATABASE_URL=sqlite:///var/bench/sqlite-n20000.sqlite3 .venv/bin/python bench/profile.py \
        --user bench-prescriber@scale.kapclinic.test /patients/1234/ [--repeat 20] [--sql]

Uses the bench settings (DEBUG off). Writes nothing but the audit events the page itself writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kapclinic.benchdata.settings")
os.environ.setdefault("KAP_ENV", "demo")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--user", required=True)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--sql", action="store_true", help="print every SQL statement of one request")
    p.add_argument("--flat", type=int, default=0, help="print the N functions with most self time")
    args = p.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from kapclinic.accounts.models import User

    client = Client()
    client.force_login(User.objects.get(email=args.user))
    client.get(args.path)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(args.path)
    print(f"HTTP {response.status_code}, {len(ctx.captured_queries)} queries")
    for q in ctx.captured_queries:
        if args.sql:
            print(f"  {q['time']:>6}s  {q['sql'][:400]}")
    slow = sorted(ctx.captured_queries, key=lambda q: float(q["time"]), reverse=True)[:5]
    print("slowest:")
    for q in slow:
        print(f"  {q['time']:>6}s  {q['sql'][:300]}")
    profiler = Profiler(interval=0.0005)
    t0 = time.perf_counter()
    profiler.start()
    for _ in range(args.repeat):
        client.get(args.path)
    profiler.stop()
    print(f"mean {(time.perf_counter() - t0) * 1000 / args.repeat:.1f} ms per request (in-process, profiled)")
    if args.flat:
        text = profiler.output_text(unicode=False, color=False, flat=True, show_all=True)
        print("\n".join(text.splitlines()[: args.flat + 6]))
    else:
        print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
