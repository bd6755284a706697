#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Error order and the small promises of SPEC §2 / §5 / §7:
# - ENOSPC comes before EDQUOT, also for an injected meta failure
#   (`fail=meta`) on a full device;
# - `quota enable` and `quota disable` are EBUSY while an extent dropped
#   before any commit is still uncommitted;
# - with quotas off, `fallocate` charges nothing: `reserved=0`.
. /scenarios/lib/ktap.sh

plan 11

# A full device: one dirty range of 2^63 - 4096 bytes (quotas off, nothing
# reserved), then 4 KiB more on another inode fills it exactly.
expect ok write 5 300 0 9223372036854771712
expect ok write 5 301 0 4K
expect ENOSPC write 5 302 0 4K
expect ENOSPC write 5 302 0 4K fail=meta
quiet reset

# The same with quotas on, over a limit: the device is filled but 32 KiB
# and committed first (quotas off), then a 1 MiB limit under the usage: a
# write whose data and meta (16 KiB) do not fit the device is ENOSPC, and
# so is an injected meta failure (`fail=meta`, upstream's qgroup meta
# reservation, which comes after the data space check) when the data does
# not fit; a write that fits is EDQUOT.
quiet write 5 300 0 9223372036854743040
quiet sync
quiet quota enable
quiet qgroup limit -e 1M 0/5
expect ENOSPC write 5 302 0 32K
expect ENOSPC write 5 302 0 48K fail=meta
expect EDQUOT write 5 302 0 8K
quiet reset

# An extent allocated and dropped before any commit is uncommitted until
# the commit: quota enable is EBUSY, then ok after the commit.
quiet fallocate 5 257 0 1M
quiet truncate 5 257 0
expect EBUSY quota enable
quiet commit
expect ok quota enable
# ... and quota disable likewise.
quiet fallocate 5 258 0 1M
quiet truncate 5 258 0
expect EBUSY quota disable
quiet reset

# Quotas off: fallocate reserves nothing.
run fallocate 5 259 0 1M
same "fallocate with quotas off: reserved=0" "$(cat "$QG/result")" "ok reserved=0"
