#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the console log of a `make bench` guest into the bench report.

The module prints one `qgroup_rs: bench: row NAME PARAM VALUE UNIT ...` line
a row (src/bench.rs). This prints the table with the ratios next to the
figures (ours / floor at the same n, cost at the largest n / at the
smallest, 2 workers / 1 worker), the performance targets met or missed, and
writes OUT/bench.csv and OUT/bench.png (gnuplot, ns/op against n, log-log).

Exits 1 when the guest was sick (the same signs as qemu/judge.py), timed
out, or the bench did not finish.
"""

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from judge import SICK, TIMESTAMP  # noqa: E402

ROW = re.compile(r"qgroup_rs: bench: row (?P<name>\S+) (?P<param>\d+) (?P<value>\S+) (?P<unit>\S+)(?P<rest>.*)$")
BEGIN = re.compile(r"qgroup_rs: bench: begin (?P<rest>.*)$")
END = re.compile(r"qgroup_rs: bench: end rows=(?P<rows>\d+)")
KV = re.compile(r"(\w+)=(\S+)")
NOTE = re.compile(r"qgroup_rs: bench: note (?P<text>.*)$")
CLOCK = re.compile(r"qgroup_rs-guest: bench clocksource (?P<name>\S+)")

# name -> (label, floor row to divide by, scaling label)
LABELS = {
    "clock": "clock read (Instant<Monotonic>::now)",
    "spinlock": "SpinLock lock + unlock",
    "rbtree": "floor: RBTree insert + remove (node kmalloc'd)",
    "rbtree_reused": "floor: RBTree insert + remove (node reused)",
    "io_tree": "io tree set_bits + clear_bits, 1 page",
    "reserve_release": "reserve_data + release_data, 1 page",
    "write_writeback": "write + writeback, 1 page",
    "set_bits_holes": "set_bits over k holes (per hole)",
    "qgroup_assign": "qgroup assign into m members",
    "commit_dirty": "commit, per dirty extent, of n two-root extents",
    "snapshot_items": "subvol snapshot, per item, of n items",
    "delete_items": "subvol delete + its commit, per item, of n items",
    "clone_items": "clone of n items into a new inode, per item",
    "rescan_extents": "quota rescan, per extent, of n two-root extents",
    "calibration": "calibration: private RBTrees, workers (ops/s)",
    "stress": "stress, workers (ops/s)",
    "mem_state": "bytes per extent state",
    "mem_extent": "bytes per data extent (one root)",
    "mem_extent_root": "bytes per further root of an extent",
    "mem_inode": "bytes per idle inode",
    "mem_inode_spares": "spare nodes an idle inode may keep",
}
# Rows compared with the floor at the same n.
VS_FLOOR = ("rbtree_reused", "io_tree", "reserve_release", "write_writeback")
# Rows whose cost is compared across their parameter (largest / smallest).
SCALING = ("rbtree", "rbtree_reused", "io_tree", "reserve_release", "write_writeback",
           "set_bits_holes", "qgroup_assign", "commit_dirty", "snapshot_items", "delete_items",
           "clone_items", "rescan_extents")


def parse(path):
    rows, begin, end, clock, notes = [], None, None, None, []
    with open(path, errors="replace") as f:
        lines = [TIMESTAMP.sub("", l.rstrip("\r\n").replace("\r", "")) for l in f]
    for line in lines:
        if m := ROW.search(line):
            extra = dict(KV.findall(m["rest"]))
            value = None if m["value"] == "n/a" else float(m["value"])
            rows.append({"name": m["name"], "param": int(m["param"]), "value": value,
                         "unit": m["unit"], "extra": extra,
                         "note": m["rest"].strip() if not extra else ""})
        elif m := BEGIN.search(line):
            begin = dict(KV.findall(m["rest"]))
        elif m := END.search(line):
            end = int(m["rows"])
        elif m := CLOCK.search(line):
            clock = m["name"]
        elif m := NOTE.search(line):
            notes.append(m["text"])
    return lines, rows, begin, end, clock, notes


def fmt(v, unit="ns/op"):
    if v is None:
        return "n/a"
    if unit != "ns/op":
        return f"{v:.0f}"
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--rc", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--out", default="build")
    args = ap.parse_args()

    lines, rows, begin, end, clock, notes = parse(args.log)
    problems = []
    for line in lines:
        for pattern, what in SICK:
            if pattern.search(line):
                problems.append(f"{what}: {line.strip()}")
                break
    if args.rc == 124 or args.rc == 137:
        problems.append(f"the guest did not finish within {args.timeout} s")
    if clock in ("jiffies", "refined-jiffies"):
        problems.append(f"the guest timed with {clock} (a tick of several ms): the figures are meaningless")
    if end is None:
        problems.append("the bench did not finish (no 'bench: end' line)")
    elif end != len(rows):
        problems.append(f"the bench printed {len(rows)} rows, announced {end}")

    by = {}
    for r in rows:
        by.setdefault(r["name"], {})[r["param"]] = r

    def value(name, param):
        r = by.get(name, {}).get(param)
        return None if r is None else r["value"]

    # Ratios. A row run interleaved with the floor carries the median of
    # its paired ratios (paired=); the others are divided by the floor row.
    for r in rows:
        r["vs_floor"] = r["vs_first"] = None
        if "paired" in r["extra"]:
            r["vs_floor"] = float(r["extra"]["paired"])
        elif r["name"] in VS_FLOOR:
            floor = value("rbtree", r["param"])
            if floor and r["value"] is not None:
                r["vs_floor"] = r["value"] / floor
        if r["name"] in SCALING:
            first = min(by[r["name"]])
            base = value(r["name"], first)
            if base and r["value"] is not None:
                r["vs_first"] = r["value"] / base
        if r["name"] in ("stress", "calibration") and r["param"] == 2:
            one = value(r["name"], 1)
            if one and r["value"] is not None:
                r["vs_first"] = r["value"] / one

    scale = (begin or {}).get("scale", "?")
    print(f"qgroup_rs bench, scale {scale}: each figure the median of {(begin or {}).get('runs', '?')} runs "
          f"of >= {(begin or {}).get('ops', '?')} operations (ns per operation unless said)")
    print("guest: qemu-system-x86_64 -accel tcg -smp 2 (no KVM), bench kernel (no lockdep/KASAN/kmemleak), "
          f"clocksource {clock or '?'}")
    print()
    head = f"{'operation':<48} {'n/k/m':>7} {'value':>9} {'unit':<6} {'min':>8} {'max':>8}  {'/floor':>7} {'/first':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        e = r["extra"]
        vf = f"{r['vs_floor']:.2f}x" if r["vs_floor"] is not None else ""
        v1 = f"{r['vs_first']:.2f}x" if r["vs_first"] is not None else ""
        mn = fmt(float(e["min"])) if "min" in e else ""
        mx = fmt(float(e["max"])) if "max" in e else ""
        unit = r["unit"]
        print(f"{LABELS.get(r['name'], r['name']):<48} {r['param']:>7} {fmt(r['value'], unit):>9} {unit:<6} {mn:>8} {mx:>8}  {vf:>7} {v1:>7}")
    print()
    for note in notes:
        print(f"note: {note}")
    print("/floor: ours / the floor's RBTree insert + remove (node kmalloc'd) at the same n: for rows run")
    print("        interleaved with the floor, the median of the runs' paired ratios (each run against the")
    print("        floor run just before it), else the two medians divided;")
    print("/first: cost at this n (k, m) / cost at the smallest; stress, calibration: 2 workers / 1 worker.")
    for r in rows:
        e = r["extra"]
        if r["name"] == "stress" and "flushes" in e:
            print(f"stress, {r['param']} worker(s): min {e.get('min')} max {e.get('max')} ops/s over "
                  f"{e.get('runs')} runs; the median run made {e['flushes']} flushes and {e['commits']} commits")

    # Performance targets.
    def vs_floor(name, n):
        r = by.get(name, {}).get(n)
        return None if r is None else r["vs_floor"]

    targets = []
    sizes = sorted(by.get("reserve_release", {}))
    for n in sizes:
        ratio, bound = vs_floor("reserve_release", n), 3.0 if n == sizes[0] else 2.0
        if ratio is not None:
            targets.append((f"reserve + release <= {bound:.1f}x floor at n={n}", ratio <= bound, f"{ratio:.2f}x"))
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        over = [value("reserve_release", n) - value("rbtree", n)
                if value("reserve_release", n) is not None and value("rbtree", n) is not None else None
                for n in (lo, hi)]
        if None not in over and over[0] > 0:
            g = over[1] / over[0]
            targets.append((f"(ours - floor) at n={hi} <= 1.5x (ours - floor) at n={lo} (reserve + release)",
                            g <= 1.5, f"{over[1]:.0f} / {over[0]:.0f} ns = {g:.2f}x"))
    for n in sorted(by.get("write_writeback", {})):
        ratio = vs_floor("write_writeback", n)
        if ratio is not None:
            targets.append((f"write + writeback <= 6x floor at n={n}", ratio <= 6.0, f"{ratio:.2f}x"))
    holes = sorted(by.get("set_bits_holes", {}))
    if holes:
        h = by["set_bits_holes"][holes[-1]]["vs_first"]
        if h is not None:
            targets.append((f"per-hole cost flat in k (k={holes[-1]} / k={holes[0]} <= 1.5x)", h <= 1.5, f"{h:.2f}x"))
    for row, what in (("commit_dirty", "commit cost per dirty extent"), ("snapshot_items", "snapshot cost per item"),
                      ("delete_items", "delete cost per item"), ("clone_items", "clone cost per item"),
                      ("rescan_extents", "rescan cost per extent")):
        ns = sorted(by.get(row, {}))
        if ns:
            c = by[row][ns[-1]]["vs_first"]
            if c is not None:
                targets.append((f"{what} flat in n (n={ns[-1]} / n={ns[0]} <= 1.5x)", c <= 1.5, f"{c:.2f}x"))
    st = value("mem_state", 1)
    if st is not None:
        targets.append(("<= 64 bytes per extent state as allocated", st <= 64, f"{st:.0f} bytes"))
    ex = value("mem_extent", 1)
    if ex is not None:
        targets.append(("<= 96 bytes per extent object as allocated", ex <= 96, f"{ex:.0f} bytes"))
    s2 = by.get("stress", {}).get(2)
    c2 = by.get("calibration", {}).get(2)
    if s2 is not None and c2 is not None:
        s, c = s2["vs_first"], c2["vs_first"]
        if s is None or c is None:
            targets.append(("2 workers >= 0.95x the calibration's speed-up", None, "n/a: no run"))
        else:
            targets.append(("2 workers >= 0.95x the calibration's speed-up", s >= 0.95 * c,
                            f"{s:.2f}x against {c:.2f}x ({s / c:.2f})"))
            if c >= 1.8:
                targets.append(("2 workers >= 1.8x one worker (the calibration allows it)", s >= 1.8, f"{s:.2f}x"))
            else:
                targets.append(("2 workers >= 1.8x one worker", None,
                                f"n/a: the emulator's own ceiling is {c:.2f}x"))
    if targets:
        print()
        print("targets:")
        for what, ok, got in targets:
            verdict = "n/a " if ok is None else "met " if ok else "MISS"
            print(f"  {verdict} {what}: {got}")

    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "bench.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "param", "value", "unit", "min", "max", "runs", "ops", "vs_floor", "vs_first",
                    "paired", "flushes", "commits"])
        for r in rows:
            e = r["extra"]
            w.writerow([r["name"], r["param"], "" if r["value"] is None else r["value"], r["unit"],
                        e.get("min", ""), e.get("max", ""), e.get("runs", ""), e.get("ops", ""),
                        "" if r["vs_floor"] is None else f"{r['vs_floor']:.3f}",
                        "" if r["vs_first"] is None else f"{r['vs_first']:.3f}",
                        e.get("paired", ""), e.get("flushes", ""), e.get("commits", "")])
    print()
    print(f"csv: {csv_path}")
    plot(by, args.out)

    if problems:
        print()
        print("Problems:")
        for p in problems:
            print(f"  {p}")
        print(f"log: {args.log}")
        return 1
    print(f"log: {args.log}")
    return 0


def plot(by, out):
    """ns/op against n, log-log: the floor and ours (gnuplot, on the host)."""
    png = os.path.join(out, "bench.png")
    if shutil.which("gnuplot") is None:
        print("plot: gnuplot is missing (make deps installs gnuplot-nox); no bench.png")
        return
    series = [("rbtree", "floor: RBTree insert+remove (kmalloc)", "lw 2 dt 2 lc rgb '#555555'"),
              ("rbtree_reused", "floor: RBTree insert+remove (node reused)", "lw 2 dt 3 lc rgb '#999999'"),
              ("io_tree", "io tree set+clear, 1 page", "lw 2 lc rgb '#1f77b4'"),
              ("reserve_release", "reserve+release, 1 page", "lw 2 lc rgb '#d62728'"),
              ("write_writeback", "write+writeback, 1 page", "lw 2 lc rgb '#2ca02c'"),
              ("set_bits_holes", "set_bits, per hole (x = k)", "lw 2 lc rgb '#9467bd'"),
              ("qgroup_assign", "qgroup assign (x = m members)", "lw 2 lc rgb '#ff7f0e'")]
    data = os.path.join(out, "bench.dat")
    plots = []
    with open(data, "w") as f:
        index = 0
        for name, title, style in series:
            pts = [(p, r["value"]) for p, r in sorted(by.get(name, {}).items()) if r["value"]]
            if not pts:
                continue
            f.write(f"# {name}\n")
            for p, v in pts:
                f.write(f"{p} {v}\n")
            f.write("\n\n")
            plots.append(f"'{data}' index {index} using 1:2 with linespoints {style} pt 7 title \"{title}\"")
            index += 1
    if not plots:
        print("plot: nothing to plot")
        return
    script = "\n".join([
        "set terminal pngcairo size 1100,700 font ',10' noenhanced",
        f"set output '{png}'",
        "set logscale xy",
        "set grid",
        "set key outside bottom center horizontal maxrows 4",
        "set xlabel 'n (states / nodes / extents in the tree; k holes; m members)'",
        "set ylabel 'ns per operation (median)'",
        "set title 'qgroup_rs bench: ours against the kernel RBTree floor (TCG guest, -smp 2)'",
        "plot " + ", \\\n     ".join(plots),
        ""])
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        print(f"plot: gnuplot failed: {r.stderr.strip()}")
        return
    print(f"plot: {png}")


if __name__ == "__main__":
    sys.exit(main())
