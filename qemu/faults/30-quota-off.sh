#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make faults: the data commands with quotas disabled (scale
# 8) and the ENOTCONN refusals, each with its 1st, 2nd, 3rd ... allocation failed
# until it succeeds (qemu/scenarios/lib/faults.sh). One result a command.
. /scenarios/lib/ktap.sh
. /scenarios/lib/faults.sh

plan $FI_QUOTA_OFF
fi_begin
fi_quota_off 8
fi_end
