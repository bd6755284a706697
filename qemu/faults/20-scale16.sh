#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make faults: every command kind of SPEC §2 from a prepared
# state of scale 16 (16 times the inodes; the multi-hole write covers 64
# dirty pages), each with its 1st, 2nd, 3rd ... allocation failed
# until it succeeds (qemu/scenarios/lib/faults.sh). One result a command.
. /scenarios/lib/ktap.sh
. /scenarios/lib/faults.sh

plan $FI_ALL
fi_begin
fi_all 16
fi_end
