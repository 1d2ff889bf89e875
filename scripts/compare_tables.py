"""Compare two output folders table by table, row for row: a refactor or an upgrade keeps every table identical.

    python scripts/compare_tables.py BEFORE_DIR AFTER_DIR [--ignore TABLE ...]

Prints one line per table (rows on each side, identical or how many rows differ) and exits 1 if any differs.
Rows are compared as sorted tuples; floats exactly (identical means identical).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import os
import sys

import fastavro


def _value(v):
    if v is None:
        return (0,)
    if isinstance(v, datetime.datetime):
        return (1, int(round(v.timestamp() * 1000)))
    if isinstance(v, list):
        return (2, tuple(_value(x) for x in v))
    if isinstance(v, dict):
        return (3, tuple(sorted((k, _value(x)) for k, x in v.items())))
    if isinstance(v, float) and v != v:
        return (4, "nan")
    return (5, v)


def read_rows(folder: str) -> list[tuple]:
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.avro"))):
        with open(path, "rb") as fh:
            rows.extend(tuple(sorted((k, _value(v)) for k, v in r.items())) for r in fastavro.reader(fh))
    return sorted(rows, key=repr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--ignore", nargs="*", default=[], help="tables not compared")
    args = parser.parse_args(argv)
    tables = sorted({os.path.basename(os.path.dirname(p)) for d in (args.before, args.after)
                     for p in glob.glob(os.path.join(d, "*", "*.avro"))} - set(args.ignore))
    if not tables:
        print(f"compare_tables: error: no Avro tables under {args.before} or {args.after}", file=sys.stderr)
        return 2
    differ = 0
    for table in tables:
        a, b = read_rows(os.path.join(args.before, table)), read_rows(os.path.join(args.after, table))
        if a == b:
            print(f"{table:20s} {len(a):8d} rows  identical")
            continue
        differ += 1
        sa, sb = set(a), set(b)
        print(f"{table:20s} {len(a):8d} -> {len(b)} rows  DIFFER: {len(sa - sb)} only before, {len(sb - sa)} only after")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
