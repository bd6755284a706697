#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make demo`: every line for the user starts with
# "qgroup_rs-demo:" (run.sh shows only those).
d() { echo "qgroup_rs-demo: $*"; }
DBG=/sys/kernel/debug/qgroup_rs
d "qgroup_rs is loaded: $(cat /sys/module/qgroup_rs/initstate 2>/dev/null)"
for p in /sys/module/qgroup_rs/parameters/*; do
	[ -f "$p" ] && d "parameter ${p##*/} = $(cat "$p")"
done
for s in /sys/kernel/debug/kunit/qgroup_rs*; do
	[ -d "$s" ] || continue
	d "KUnit suite ${s##*/}: $(grep -c '^    ok' "$s/results") passed, $(grep -c '^    not ok' "$s/results") failed"
done
if [ -d "$DBG" ]; then
	for f in "$DBG"/*; do
		d "== ${f##*/}"
		cat "$f" 2>/dev/null | while IFS= read -r line; do d "$line"; done
	done
else
	d "no debugfs interface yet ($DBG)"
fi
