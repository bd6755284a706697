#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The seeded command fuzzer (qemu/fuzz.c, /bin/qgroup_rs_fuzz), short run:
# QGROUP_RS_FUZZ_CMDS commands one write(2) each (well-formed, mutated,
# junk), after each one `result` agrees with the write, a failed command
# changed no read file, `check` is ok; then QGROUP_RS_FUZZ_WRITERS
# concurrent writers share a quarter as many more while `check` is read,
# and the module still answers. The binary prints the KTAP document.
# Here a `reset` comes about every 200 commands (QGROUP_RS_FUZZ_RESET):
# every command reads every file, whose cost grows with the instance.
# `make fuzz` runs the long version (FUZZ_CMDS, FUZZ_SEED, a reset about
# every 500) in its own boot.
export QGROUP_RS_FUZZ_RESET="${QGROUP_RS_FUZZ_RESET:-200}"
exec /bin/qgroup_rs_fuzz "${QGROUP_RS_FUZZ_SEED:-1}" "${QGROUP_RS_FUZZ_CMDS:-6000}" "${QGROUP_RS_FUZZ_WRITERS:-4}"
