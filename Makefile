# SPDX-License-Identifier: GPL-2.0
#
# qgroup_rs: the user's front end. `make help` lists the targets.
# (The kernel's build reads Kbuild, not this file, for the module itself.)

LLVM ?= -19
export PATH := $(HOME)/.cargo/bin:$(PATH)

# The test kernel is built into a cache outside the repo, keyed by its config
# and toolchain; qemu/kernel.sh builds it when needed and prints its path.
# KDIR=/path uses an existing prepared kernel tree instead (see README).
KDIR ?=
BUILD ?= $(CURDIR)/build
SCENARIOS ?=
COMPARE ?=
QEMU_TIMEOUT ?= 1800
BENCH_TIMEOUT ?= 1500

# make bench builds the module again, for the bench kernel (its own
# flavour of qemu/kernel.sh, or BENCH_KDIR=/path), from a copy of the
# sources in BENCH_SRC, so that the test build's qgroup_rs.ko and objects
# are left alone. (Kbuild's MO= would need a source tree without the test
# build's objects in it.)
BENCH_KDIR ?=
BENCH_SRC = $(abspath $(BUILD))/bench-src
# make faults: the long fault-injection sweep (qemu/faults/).
FAULTS_TIMEOUT ?= 1800
# make stress: operations per stress run (each of 7 runs a boot), the
# virtual CPU counts to boot, one guest each.
STRESS_OPS ?= 100000
STRESS_SMP ?= 2 4
# make fuzz: commands of the long fuzzer run (plus a quarter as many from
# concurrent writers), and its seed.
FUZZ_CMDS ?= 200000
FUZZ_SEED ?= 1

# TESTING=y builds the testing module: the production one plus the KUnit
# suites and the tools (`stress`, `bench`; src/tools.rs). A plain `make`
# builds the production module; every target that boots the guest builds the
# testing one (Kbuild rebuilds when the switch changes).
TESTING ?=
test kunit demo compare faults stress shell fuzz: TESTING = y

GET_KDIR = $(if $(KDIR),echo $(KDIR),qemu/kernel.sh)
GET_BENCH_KDIR = $(if $(BENCH_KDIR),echo $(BENCH_KDIR),qemu/kernel.sh --flavor bench)
GET_KDIR_PATH = $(if $(KDIR),echo $(KDIR),qemu/kernel.sh --dir)
KMAKE = $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=1) \
	$(if $(TESTING),QGROUP_RS_TESTING=y)
RS_FILES = $(sort $(wildcard src/*.rs src/*/*.rs kunit/*.rs))
RUSTFMT = rustfmt --edition 2021 --config-path "$$(readlink -f $$kdir/source || echo $$kdir)/.rustfmt.toml"
RUN = kdir=$$($(GET_KDIR)) && qemu/run.sh

.PHONY: all module deps deps-check kernel test kunit demo compare shell bench bench-kernel faults stress fuzz \
	clean rust-analyzer fmt fmt-check rustfmt rustfmtcheck clippy help

all: module

help:
	@echo "make demo        boot the guest and run the seed scenarios, buggy vs fixed"
	@echo "make test        build everything, run KUnit suites and scenarios in QEMU"
	@echo "make kunit       only the KUnit suites in the guest, and SCENARIOS=DIR's (a quick round)"
	@echo "make compare     run the comparison scenarios on the module and on real btrfs"
	@echo "                 in the guest, step by step (COMPARE=DIR: DIR/*.qg instead)"
	@echo "make             build the production qgroup_rs.ko (kernel built first if needed;"
	@echo "                 TESTING=y: with the KUnit suites, stress and bench, as make test)"
	@echo "make deps        install the toolchain and kernel source (idempotent)"
	@echo "make kernel      build the cached test kernel"
	@echo "make shell       the guest with the module loaded and a shell on ttyS0"
	@echo "make bench       the benchmark on a kernel without debug options: table,"
	@echo "                 build/bench.csv, build/bench.png (bench kernel built if needed)"
	@echo "make faults      the long fault-injection sweep: every command, every allocation failed"
	@echo "make stress      in-kernel stress at -smp 2 and 4, 1/2/4 workers: ops/s table"
	@echo "make fuzz        the seeded command fuzzer, long (FUZZ_CMDS=200000 FUZZ_SEED=1)"
	@echo "make fmt         rustfmt the sources;  make fmt-check  check only"
	@echo "make CLIPPY=1    build with clippy;     make clippy      the same"
	@echo "make rust-analyzer   write rust-project.json"
	@echo "make clean       remove build products (not the kernel cache)"

deps:
	qemu/deps.sh

# The set-up runs by itself when something is missing.
# (With KDIR= the Debian kernel source is not needed.)
deps-check:
	@export NEED_KSRC=$(if $(KDIR),0,1); qemu/deps.sh --check || qemu/deps.sh

kernel: deps-check
	@kdir=$$($(GET_KDIR)) && test -f "$$kdir/Module.symvers" || \
		{ echo "KDIR=$(KDIR) is not a built kernel tree (no Module.symvers)"; exit 1; }

module: kernel
	@kdir=$$($(GET_KDIR)) && $(KMAKE) modules

clippy:
	$(MAKE) module CLIPPY=1 TESTING=y
	$(MAKE) module CLIPPY=1

rust-analyzer: kernel
	@kdir=$$($(GET_KDIR)) && $(KMAKE) rust-analyzer

fmt rustfmt: kernel
	@kdir=$$($(GET_KDIR)) && $(RUSTFMT) $(RS_FILES)

fmt-check rustfmtcheck: kernel
	@kdir=$$($(GET_KDIR)) && $(RUSTFMT) --check $(RS_FILES)

test: module
	@$(RUN) test "$$kdir" "$(BUILD)" "$(SCENARIOS)" "$(QEMU_TIMEOUT)"

kunit: module
	@$(RUN) kunit "$$kdir" "$(BUILD)" "$(SCENARIOS)" "$(QEMU_TIMEOUT)"

demo: module
	@$(RUN) demo "$$kdir" "$(BUILD)" "$(SCENARIOS)" "$(QEMU_TIMEOUT)"

compare: module
	@$(RUN) compare "$$kdir" "$(BUILD)" "$(COMPARE)" "$(QEMU_TIMEOUT)"

faults: module
	@$(RUN) faults "$$kdir" "$(BUILD)" "" "$(FAULTS_TIMEOUT)"

# One guest a CPU count; the table covers every boot; fails when a boot's
# judge or a run does.
stress: module
	@kdir=$$($(GET_KDIR)) && rc=0 && \
	for smp in $(STRESS_SMP); do \
		QEMU_SMP=$$smp LOG_TAG=-smp$$smp \
		QGROUP_RS_APPEND="$(QGROUP_RS_APPEND) qgroup_rs_stress_ops=$(STRESS_OPS) qgroup_rs_stress_smp=$$smp" \
		qemu/run.sh stress "$$kdir" "$(BUILD)" "" "$(QEMU_TIMEOUT)" || rc=1; \
	done; \
	echo "Stress (qgroup_rs stress, $(STRESS_OPS) operations a run; speed-up: ops/s over 1 worker):"; \
	python3 qemu/stress_table.py $(foreach s,$(STRESS_SMP),"$(BUILD)/console-stress-smp$(s).log") || rc=1; \
	exit $$rc

# The long fuzzer run in its own boot, judged like make test; the guest
# gets QEMU_TIMEOUT plus 40 ms a command.
fuzz: module
	@kdir=$$($(GET_KDIR)) && \
	QGROUP_RS_APPEND="$(QGROUP_RS_APPEND) qgroup_rs_fuzz_cmds=$(FUZZ_CMDS) qgroup_rs_fuzz_seed=$(FUZZ_SEED)" \
	qemu/run.sh fuzz "$$kdir" "$(BUILD)" "" "$$(( $(QEMU_TIMEOUT) + $(FUZZ_CMDS) / 25 ))"

shell: module
	@$(RUN) shell "$$kdir" "$(BUILD)" "$(SCENARIOS)" 0

bench-kernel: deps-check
	@kdir=$$($(GET_BENCH_KDIR)) && test -f "$$kdir/Module.symvers" || \
		{ echo "BENCH_KDIR=$(BENCH_KDIR) is not a built kernel tree (no Module.symvers)"; exit 1; }

bench: bench-kernel
	@kdir=$$($(GET_BENCH_KDIR)) && rm -rf $(BENCH_SRC) && mkdir -p $(BENCH_SRC) && \
		cp -pr Kbuild src kunit $(BENCH_SRC)/ && \
		$(MAKE) -C "$$kdir" M=$(BENCH_SRC) LLVM=$(LLVM) QGROUP_RS_TESTING=y modules && \
		QGROUP_RS_KO=$(BENCH_SRC)/qgroup_rs.ko qemu/run.sh bench "$$kdir" "$(BUILD)" "" "$(BENCH_TIMEOUT)"

clean:
	-@kdir=$$($(GET_KDIR_PATH)) && $(KMAKE) clean 2>/dev/null
	rm -rf $(BUILD) rust-project.json
