#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a qgroup_rs guest console log.

Cuts the log into its KTAP documents (the kernel's own boot-time suites, the
module's suites printed at insmod, and each scenario script's output between
its `scenario begin` / `scenario end` markers) and parses each with the
kernel's own parser, tools/testing/kunit/kunit_parser.py of the tree KDIR
was built from (--kdir). Counts every test, and looks for every sign of a
sick guest: panic, Oops, BUG, WARNING (WARN_ON, lockdep), KASAN and UBSAN
reports, Rust panics, kmemleak leaks, a failed insmod/rmmod, missing results
and a timeout.

Prints a per-suite summary, each problem found, and as its last line
`N passed, N failed`, where a problem outside any test counts as one failure.
Exits 1 when anything failed, 2 when kunit_parser cannot be imported.
"""

import argparse
import os
import re
import sys

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
DOC_START = re.compile(r"^(?:KTAP|TAP) version \d+\s*$")
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


def load_kunit_parser(kdir):
    """The kernel's own KTAP parser, kunit_parser (tools/testing/kunit/), from
    the source tree KDIR was built from: KDIR/source (an O= build's link to
    its source) or KDIR itself (an in-tree build). Exits 2 when neither has
    it."""
    tried = []
    for top in (os.path.join(kdir, "source"), kdir):
        where = os.path.join(top, "tools", "testing", "kunit")
        tried.append(where)
        if os.path.isfile(os.path.join(where, "kunit_parser.py")):
            sys.path.insert(0, where)
            sys.dont_write_bytecode = True  # leave the kernel tree as it is
            import kunit_parser
            import kunit_printer
            return kunit_parser, kunit_printer.Printer(print=False)
    print(f"judge: cannot import the kernel's KTAP parser: no kunit_parser.py in {' or '.join(tried)}\n"
          "judge: KDIR must be a kernel tree with tools/, or a build directory whose 'source' link points at one",
          file=sys.stderr)
    sys.exit(2)


def ktap_documents(lines):
    """`lines` cut into KTAP documents: each starts at a `KTAP version` (or
    `TAP version`) line in column 0 and runs to the next one (nested
    documents are indented). kunit_parser reads only the first document it
    is given; lines before the first header belong to none."""
    docs = []
    for line in lines:
        if DOC_START.match(line):
            docs.append([])
        if docs:
            docs[-1].append(line)
    return docs


def missing(kp, test):
    """A subtest kunit_parser made up for a result the plan promised and the
    log does not have (no name, no subtests, crashed)."""
    return test.status == kp.TestStatus.TEST_CRASHED and not test.name and not test.subtests


def failed_leaves(kp, test):
    """The tests under `test` (itself when it has none) that failed or crashed."""
    if not test.subtests:
        if not test.ok_status() and test.status != kp.TestStatus.NO_TESTS:
            yield test
        return
    for sub in test.subtests:
        yield from failed_leaves(kp, sub)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--rc", type=int, default=0, help="exit code of timeout(1) around QEMU")
    ap.add_argument("--timeout", type=int, default=0)
    ap.add_argument("--suite", action="append", default=[], help="a module suite that must report")
    ap.add_argument("--mode", default="test")
    ap.add_argument("--kdir", required=True, help="the kernel build the guest runs (its source has kunit_parser)")
    args = ap.parse_args()
    kp, printer = load_kunit_parser(args.kdir)

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
    # KUnit: every KTAP document in the kernel's lines (scenarios print
    # theirs from user space: no timestamp). Counts as kunit.py does: a
    # test the plan promised but the log lacks (a crash) is a failure.
    kunit_lines = [l for l, k in kernel_lines if k]
    reported = set()
    for doc in ktap_documents(kunit_lines):
        for suite in kp.parse_run_tests(doc, printer).subtests:
            if missing(kp, suite):
                continue  # never started: the module suites are checked by name below
            c = suite.counts
            p, f, s = c.passed, c.failed + c.crashed, c.skipped
            bad = list(failed_leaves(kp, suite))
            # Its own result line not ok, or missing, with every test in it ok.
            own = f == 0 and suite.status in (kp.TestStatus.FAILURE, kp.TestStatus.TEST_CRASHED)
            f = max(f, int(own))
            passed, failed, skipped = passed + p, failed + f, skipped + s
            reported.add(suite.name)
            mark = "ok" if f == 0 else "FAIL"
            print(f"  {mark:4} {suite.name}: {p} passed, {f} failed, {s} skipped")
            for t in bad:
                if t.name:
                    print(f"         not ok: {t.name}")
            lost = sum(1 for t in bad if not t.name)
            if lost:
                print(f"         not ok: {lost} test(s) the plan promised without a result (crashed)")
            if own:
                print(f"         not ok: {suite.name} itself (its result line says not ok, or is missing)")
    for name in args.suite:
        if name not in reported:
            problems.append(f"missing KTAP results of module suite {name}")

    # Scenarios: each section between its begin / end markers, its own
    # KTAP document (lines the kernel printed meanwhile left out).
    print("Scenarios:")
    current = None
    body = []
    nscen = 0
    for line, from_kernel in kernel_lines:
        if from_kernel:
            continue
        if line.startswith(GUEST + "scenario begin "):
            if current:
                problems.append(f"scenario {current} never finished")
            current, body = line[len(GUEST + "scenario begin "):], []
        elif current and line.startswith(GUEST + "scenario end "):
            rc = line.rsplit("rc=", 1)[-1].split(" ", 1)[0]
            nscen += 1
            docs = [kp.parse_run_tests(d, printer) for d in ktap_documents(body)]
            plan = docs[0].expected_count if docs else None
            results = [t for d in docs for t in d.subtests if not missing(kp, t)]
            p = sum(1 for t in results if t.ok_status())
            f = len(results) - p
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
            for num, t in enumerate(results, 1):
                if not t.ok_status():
                    print(f"         not ok {num} {t.name}")
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
