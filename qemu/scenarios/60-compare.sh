#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The comparison corpus (qemu/compare/*.qg, see qemu/compare.sh) against
# real btrfs on /dev/ram0: one result per comparison scenario, ok when the
# module and btrfs agree step by step and at every checkpoint, or differ
# exactly in the ways the scenario declares (each explained from upstream
# code in its header). The step-by-step report is in the KTAP diagnostics.
# make compare runs every scenario; make test all but those marked below.
. /scenarios/lib/ktap.sh
COMPARE_LIB=1
COMPARE_PREFIX="# "
. /compare.sh

# A scenario with the line `# make compare only` is left to make compare
# (its ground is covered by others here), to keep make test's time.
set --
for f in /compare/*.qg; do
	[ -f "$f" ] || continue
	grep -qx '# make compare only' "$f" || set -- "$@" "$f"
done
plan $#
for f in "$@"; do
	compare_file "$f"
	result $? "compare ${f##*/}: $CMP_VERDICT"
done
