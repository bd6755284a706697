#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# All or nothing under ENOMEM (SPEC §7): every command kind of SPEC §2 with
# its 1st, 2nd, 3rd ... fault-injection point failed (fail-nth), until it
# succeeds; each failure must give ENOMEM (or the command's own errno) and
# leave every read file as it was. The short sweep; `make faults` runs the
# long one (qemu/faults/). One result per command kind.
. /scenarios/lib/ktap.sh
. /scenarios/lib/faults.sh

# A sweep gives up after 3 runs that changed the state (each costs a
# rebuild of the state), to keep make test short; make faults never does.
FI_MAX_BROKEN=3
plan $FI_ALL
fi_begin
fi_all 1
fi_end
