#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a qgroup_rs guest console log.

Parses every KTAP document in the log (the kernel's own boot-time suites, the
module's suites printed at insmod, and each scenario script's output), counts
every test, and looks for every sign of a sick guest: panic, Oops, BUG,
WARNING (WARN_ON, lockdep), KASAN and UBSAN reports, Rust panics, kmemleak
leaks, a failed insmod/rmmod, missing results and a timeout.

Prints a per-suite summary, each problem found, and as its last line
`N passed, N failed`, where a problem outside any test counts as one failure.
Exits 1 when anything failed.
"""

import argparse
import re
import sys

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
RESULT = re.compile(r"^(?P<indent> *)(?P<not>not )?ok (?P<num>\d+)(?: (?:- )?(?P<name>[^#]*?))?\s*(?:#\s*(?P<directive>.*))?$")
PLAN = re.compile(r"^(?P<indent> *)1\.\.(?P<n>\d+)")
GUEST = "qgroup_rs-guest: "

# (pattern, what it means) for signs of a sick kernel, anywhere in the log.
SICK = [
    (re.compile(r"Kernel panic"), "kernel panic"),
    (re.compile(r"\bOops\b"), "Oops"),
    (re.compile(r"BUG: KASAN"), "KASAN report"),
    (re.compile(r"BUG: "), "kernel BUG"),
    (re.compile(r"WARNING: .*(locking|lock state|lock held|deadlock)"), "lockdep report"),
    (re.compile(r"WARNING: "), "kernel WARNING"),
    (re.compile(r"DEBUG_LOCKS_WARN_ON"), "lockdep report"),
    (re.compile(r"UBSAN: "), "UBSAN report"),
    (re.compile(r"panicked at"), "Rust panic"),
    (re.compile(r"general protection fault"), "general protection fault"),
    (re.compile(r"Unable to handle kernel"), "kernel fault"),
    (re.compile(r"rcu: INFO: .*stall"), "RCU stall"),
    (re.compile(r"hung_task|blocked for more than"), "hung task"),
]


class Node:
    """A KTAP test result, with the results nested under it."""

    def __init__(self, name, ok, skip, children):
        self.name, self.ok, self.skip, self.children = name, ok, skip, children

    def leaves(self):
        if not self.children:
            yield self
        for child in self.children:
            yield from child.leaves()


def parse_ktap(lines):
    """Top-level results of every KTAP document in `lines` (already stripped)."""
    top = []
    pending = {}  # indent -> results seen at that indent, not yet claimed
    for line in lines:
        m = RESULT.match(line)
        if not m:
            continue
        indent = len(m.group("indent"))
        directive = (m.group("directive") or "").strip()
        node = Node(
            (m.group("name") or "").strip(),
            m.group("not") is None,
            directive.upper().startswith("SKIP"),
            pending.pop(indent + 4, []),
        )
        # Deeper leftovers belong to nothing that finished: drop them.
        for deeper in [k for k in pending if k > indent]:
            pending.pop(deeper)
        if indent == 0:
            top.append(node)
        else:
            pending.setdefault(indent, []).append(node)
    return top


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--rc", type=int, default=0, help="exit code of timeout(1) around QEMU")
    ap.add_argument("--timeout", type=int, default=0)
    ap.add_argument("--suite", action="append", default=[], help="a module suite that must report")
    ap.add_argument("--mode", default="test")
    args = ap.parse_args()

    raw = open(args.log, encoding="utf-8", errors="replace").read().replace("\r", "").split("\n")
    problems = []
    kernel_lines = []  # (line, from_kernel)
    for line in raw:
        from_kernel = bool(TIMESTAMP.match(line))
        kernel_lines.append((TIMESTAMP.sub("", line), from_kernel))

    if args.rc == 124 or args.rc == 137:
        problems.append(f"timeout: the guest did not power off within {args.timeout} s")
    elif args.rc != 0:
        problems.append(f"QEMU exited with status {args.rc}")

    # Signs of a sick kernel.
    seen = set()
    for line, _ in kernel_lines:
        for pattern, what in SICK:
            if pattern.search(line):
                key = (what, line.strip())
                if key not in seen:
                    seen.add(key)
                    problems.append(f"{what}: {line.strip()}")
                break

    # Guest protocol: insmod, scenarios, rmmod, kmemleak.
    guest = [(i, l[len(GUEST):]) for i, (l, k) in enumerate(kernel_lines) if not k and l.startswith(GUEST)]
    messages = [m for _, m in guest]

    def guest_value(prefix):
        for m in messages:
            if m.startswith(prefix):
                return m[len(prefix):]
        return None

    insmod = guest_value("insmod rc=")
    if insmod is None:
        problems.append("the guest never loaded the module")
    elif insmod != "0":
        problems.append(f"insmod failed (rc={insmod})")
    rmmod = guest_value("rmmod rc=")
    if insmod == "0" and rmmod is None:
        problems.append("the guest never unloaded the module")
    elif rmmod not in (None, "0"):
        problems.append(f"rmmod failed (rc={rmmod})")
    for m in messages:
        if m.startswith("debugfs directory still present") or m.startswith("reset failed"):
            problems.append(m)
    if args.mode == "demo":
        verdict = guest_value("demo verdict ")
        if verdict is None:
            problems.append("the demo printed no verdict")
        elif verdict != "ok":
            problems.append("the demo's fixed runs do not match SPEC §3")
    if args.mode == "compare":
        verdict = guest_value("compare verdict ")
        if verdict is None:
            problems.append("the comparison printed no verdict")
        elif verdict != "ok":
            problems.append("some comparison scenarios differ from real btrfs in ways they do not declare")
    if "done" not in messages:
        problems.append("the guest did not finish (no 'done' line): crashed or hung")

    # kmemleak report between its markers.
    leaks = 0
    inside = False
    for line, from_kernel in kernel_lines:
        if not from_kernel and line == GUEST + "kmemleak begin":
            inside = True
        elif not from_kernel and line == GUEST + "kmemleak end":
            inside = False
        elif inside and line.startswith("unreferenced object"):
            leaks += 1
            problems.append(f"kmemleak: {line.strip()}")
        elif inside and line.strip().startswith("comm ") and problems and problems[-1].startswith("kmemleak:"):
            problems[-1] += f" allocated by {line.strip()}"
    if "kmemleak begin" not in messages and "done" in messages:
        problems.append("no kmemleak report in the log")

    passed = failed = skipped = 0
    print("KUnit suites:")
    # KUnit: every KTAP document in kernel lines, outside scenario sections.
    kunit_lines = [l for l, k in kernel_lines if k]
    suites = parse_ktap(kunit_lines)
    reported = set()
    for suite in suites:
        leaves = list(suite.leaves())
        p = sum(1 for t in leaves if t.ok and not t.skip)
        s = sum(1 for t in leaves if t.skip)
        f = sum(1 for t in leaves if not t.ok)
        if not suite.children and not suite.ok:
            f = max(f, 1)
        passed, failed, skipped = passed + p, failed + f, skipped + s
        reported.add(suite.name)
        mark = "ok" if f == 0 else "FAIL"
        print(f"  {mark:4} {suite.name}: {p} passed, {f} failed, {s} skipped")
        for t in leaves:
            if not t.ok:
                print(f"         not ok: {t.name}")
    for name in args.suite:
        if name not in reported:
            problems.append(f"missing KTAP results of module suite {name}")

    # Scenarios: each section between its begin / end markers.
    print("Scenarios:")
    current = None
    body = []
    nscen = 0
    for line, from_kernel in kernel_lines:
        if from_kernel:
            continue
        if line.startswith(GUEST + "scenario begin "):
            current, body = line[len(GUEST + "scenario begin "):], []
        elif current and line.startswith(GUEST + "scenario end "):
            rc = line.rsplit("rc=", 1)[-1].split(" ", 1)[0]
            nscen += 1
            plan = next((int(m.group("n")) for m in map(PLAN.match, body) if m and not m.group("indent")), None)
            results = [m for m in map(RESULT.match, body) if m and not m.group("indent")]
            p = sum(1 for m in results if not m.group("not"))
            f = sum(1 for m in results if m.group("not"))
            why = []
            if rc != "0":
                why.append(f"exit status {rc}")
            if plan is None:
                why.append("no KTAP plan")
            elif len(results) < plan:
                why.append(f"{len(results)} of {plan} results")
            if why and f == 0:
                f = 1
            passed, failed = passed + p, failed + f
            mark = "ok" if f == 0 else "FAIL"
            extra = f" ({', '.join(why)})" if why else ""
            print(f"  {mark:4} {current}: {p} passed, {f} failed{extra}")
            for m in results:
                if m.group("not"):
                    print(f"         not ok {m.group('num')} {m.group('name')}")
            current = None
        elif current:
            body.append(line)
    if current:
        problems.append(f"scenario {current} never finished")
    if nscen == 0:
        print("  (none)")

    if args.mode == "demo" and guest_value("demo verdict ") == "ok":
        print("Demo: the fixed runs match SPEC §3")
        passed += 1
    if args.mode == "compare" and guest_value("compare verdict ") == "ok":
        print("Compare: every scenario is identical or differs only as it declares")
        passed += 1
    if problems:
        print("Problems:")
        for p in problems:
            print(f"  {p}")
    failed += len(problems)
    print(f"log: {args.log}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
