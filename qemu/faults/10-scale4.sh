#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make faults: every command kind of SPEC §2 from a prepared state of scale 4 (x4 inodes, a write over 16 dirty pages and holes), each with its 1st, 2nd, 3rd ... allocation failed
# (qemu/scenarios/lib/faults.sh). One result a command.
. /scenarios/lib/ktap.sh
. /scenarios/lib/faults.sh

plan $FI_ALL
fi_begin
fi_all 4
fi_end
