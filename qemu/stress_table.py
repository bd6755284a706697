#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The table of `make stress`: ops/s and speed-up over one worker.

Reads the `qgroup_rs-stress: key=value ...` lines that qemu/stress.sh prints
in each console log given, and prints one row a run: the -smp booted, the
CPUs the guest kernel brought up, inode mix,
workers, operations, EDQUOT outcomes, seconds (the module's elapsed_ns),
ops/s, the speed-up over 1 worker at the same CPUs and mix, and `check`.
Exits 1 when a log has no runs or a run failed (a missing field, or check
not as wanted).
"""

import re
import sys

LINE = re.compile(r"qgroup_rs-stress: (?P<kv>.*\S)")


def runs(path):
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.search(line.replace("\r", ""))
            if m:
                out.append(dict(kv.split("=", 1) for kv in m.group("kv").split() if "=" in kv))
    return out


def num(run, key):
    try:
        return int(run.get(key, ""))
    except ValueError:
        return None


def main(paths):
    rows, bad, total = [], 0, 0
    for path in paths:
        got = runs(path)
        if not got:
            print(f"stress: no runs in {path}")
            bad += 1
        rows += got
    base = {}
    for r in rows:
        ops, ns = num(r, "ops"), num(r, "elapsed_ns")
        r["rate"] = ops * 1e9 / ns if ops is not None and ns else None
        if r.get("workers") == "1" and r.get("legacy") == "off" and r["rate"]:
            base[(r.get("smp"), r.get("inodes"))] = r["rate"]
    print(f"{'smp':>3} {'cpus':>4}  {'inodes':8} {'workers':>7} {'ops':>9} {'edquot':>8} {'seconds':>8} {'ops/s':>9} {'speed-up':>8}  check")
    for r in rows:
        ops, ns, rate = num(r, "ops"), num(r, "elapsed_ns"), r["rate"]
        total += ops or 0
        one = base.get((r.get("smp"), r.get("inodes")))
        speed = f"{rate / one:7.2f}x" if rate and one and r.get("legacy") == "off" else "       -"
        inodes = r.get("inodes", "?")
        check = r.get("check", "?")
        if r.get("legacy", "off") != "off":
            check += f" ({r['legacy']} on)"
        print(f"{r.get('smp', '?'):>3} {r.get('cpus', '?'):>4}  {inodes:8} {r.get('workers', '?'):>7} "
              f"{ops if ops is not None else '?':>9} {r.get('edquot', '?'):>8} "
              f"{ns / 1e9 if ns else float('nan'):8.2f} {rate if rate else float('nan'):9.0f} {speed}  {check}")
        if rate is None or check.startswith("bad") or check == "?" or r.get("cpus") != r.get("smp"):
            bad += 1
    print(f"total operations: {total}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[0])
        print("usage: stress_table.py CONSOLE_LOG...")
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
