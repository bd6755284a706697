// SPDX-License-Identifier: GPL-2.0
/*
 * qgroup_rs_fuzz: a seeded command fuzzer for qgroup_rs's debugfs
 * interface, run in the test guest (built on the host with
 * gcc -static -O2 -Wall, like btrfs_commit.c; no library needed).
 *
 * qgroup_rs_fuzz SEED NCMDS [WRITERS]
 *	Sequential phase: NCMDS commands written to `control`, one write(2)
 *	each, drawn from a PRNG seeded with SEED: well-formed commands of
 *	SPEC §2 and §8.3 with small,
 *	extreme, existing and unknown arguments, biased toward commands that
 *	succeed; mutations of them (tokens dropped, duplicated, swapped,
 *	replaced; truncation, extra blanks, non-UTF-8 bytes, an embedded NUL,
 *	lines over 1024 bytes) and pure binary junk; `reset` every ~500
 *	commands (QGROUP_RS_FUZZ_RESET=N: every ~N) to keep the instance, and
 *	the cost of reading it after every command, small. After every
 *	command:
 *	 - write(2) returned the command's length or -1;
 *	 - `result` says `ok` iff the write succeeded, else `error ERRNO` with
 *	   the write's errno;
 *	 - a failed command left qgroups, reservations, inodes, extents,
 *	   mappings, status, check, legacy and stats (but its edquot line)
 *	   byte for byte as before (an EDQUOT
 *	   whose flush ran, SPEC §1.5a, is exempt: the flush's effects stay);
 *	 - `check` is ok, unless a legacy switch has been on since the last
 *	   reset (they re-create bugs on purpose). Two raw API misuses break
 *	   §1.7's invariants by design, and after one `check` may report what
 *	   it causes, and only that, until the next reset: a `meta free` /
 *	   `meta convert` of more than is reserved (an underflow, SPEC §1.1;
 *	   most of the fuzzer's meta commands free only what it holds) and a
 *	   `free` / `release` over DELALLOC bytes (dirty bytes unreserved;
 *	   most of the fuzzer's frees aim at reserved, clean ranges).
 *	Concurrent phase: WRITERS (default 4, 0 for none) forked writers share
 *	NCMDS / 4 random commands (no state comparison; no legacy switch
 *	turned on, no meta free / convert, free / release only on inodes
 *	nobody writes, so `check` must stay ok) while the parent reads
 *	`check`, which must be ok at every read (SPEC §6: reads never see a
 *	half-done command); afterwards `check` must be ok and sync, quota
 *	enable and commit must succeed.
 *	Never writes a valid `bench`, nor a valid `stress` of more than 200
 *	operations (malformed ones, refused at parse time, are written).
 *	Prints one KTAP document (8 results) with `# fuzz:` diagnostics
 *	(counts, errnos, timings), the first violations of each kind (the
 *	command escaped, the first differing line of each changed file) and,
 *	for the first violation, `# repro:` lines: every command since the
 *	last reset. Exits 0: the KTAP results carry the verdict.
 *
 * qgroup_rs_fuzz --print SEED NCMDS
 *	Print the commands the sequential phase would start with (escaped,
 *	one a line) without writing them (the generator's bias follows the
 *	module's answers, so a real run diverges once its first answer does).
 *
 * qgroup_rs_fuzz --replay FILE
 *	Write each line of FILE (escaped as in the reports: \\, \xHH) to
 *	`control` and print its write status and `result`, then `check`
 *	(with QGROUP_RS_FUZZ_VERBOSE set, every read file after each one).
 *
 * Environment: QGROUP_RS_DIR (default /sys/kernel/debug/qgroup_rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_COMMAND 1024	/* the module's limit (SPEC §5) */
#define CMD_CAP (1 << 20)	/* the longest write: 1 MiB of junk */
#define MAX_TOKENS 24
#define TOKEN_CAP 400
#define SHOW_VIOLATIONS 5	/* violations printed per kind */
#define REPRO_CAP 1200		/* commands kept since the last reset */
#define REPRO_BYTES 2048	/* bytes kept of each */
#define STRESS_BUDGET 200	/* most THREADS x OPS of a stress written */

static const char *dir = "/sys/kernel/debug/qgroup_rs";

/* ---- PRNG (splitmix64) ---- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

/* True with probability per_mille / 1000. */
static int chance(struct rng *r, unsigned per_mille)
{
	return below(r, 1000) < per_mille;
}

#define PICK(r, arr) ((arr)[below((r), sizeof(arr) / sizeof((arr)[0]))])

/* ---- errno names ---- */

static const struct {
	int e;
	const char *name;
} errnos[] = {
	{ EINVAL, "EINVAL" }, { ENOENT, "ENOENT" }, { EEXIST, "EEXIST" },
	{ EDQUOT, "EDQUOT" }, { EBUSY, "EBUSY" }, { ENOTCONN, "ENOTCONN" },
	{ ENOMEM, "ENOMEM" }, { ENOSPC, "ENOSPC" }, { EOVERFLOW, "EOVERFLOW" },
	{ EFAULT, "EFAULT" }, { EIO, "EIO" }, { EPERM, "EPERM" },
	{ EAGAIN, "EAGAIN" }, { EINTR, "EINTR" }, { E2BIG, "E2BIG" },
	{ ERANGE, "ERANGE" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { ENOSYS, "ENOSYS" },
	{ ENODEV, "ENODEV" }, { EBADF, "EBADF" }, { EACCES, "EACCES" },
};
#define NERRNO (sizeof(errnos) / sizeof(errnos[0]))

/* Index into errnos[], NERRNO for anything else. */
static unsigned errno_index(int e)
{
	unsigned i;

	for (i = 0; i < NERRNO; i++)
		if (errnos[i].e == e)
			break;
	return i;
}

static const char *errno_str(int e, char *tmp, size_t n)
{
	unsigned i = errno_index(e);

	if (i < NERRNO)
		return errnos[i].name;
	snprintf(tmp, n, "errno%d", e);
	return tmp;
}

/* ---- escaping ---- */

/* Escape len bytes of s into out (cap bytes), cut after max input bytes. */
static void escape(const char *s, size_t len, char *out, size_t cap, size_t max)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < max && o + 8 < cap; i++) {
		unsigned char c = s[i];

		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c >= 0x20 && c < 0x7f && c != '\'') {
			out[o++] = c;
		} else {
			o += snprintf(out + o, cap - o, "\\x%02x", c);
		}
	}
	if (i < len)
		snprintf(out + o, cap - o, "...(%zu bytes)", len);
	else
		out[o] = 0;
}

static size_t unescape(const char *s, char *out)
{
	size_t o = 0;

	while (*s) {
		if (s[0] == '\\' && s[1] == '\\') {
			out[o++] = '\\';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
			char hex[3] = { s[2], s[3], 0 };

			out[o++] = (char)strtoul(hex, NULL, 16);
			s += 4;
		} else {
			out[o++] = *s++;
		}
	}
	return o;
}

/* ---- the read files ---- */

enum {
	F_QGROUPS, F_RESERVATIONS, F_INODES, F_CHECK, F_LEGACY, F_STATS,
	F_EXTENTS, F_MAPPINGS, F_STATUS, NFILES
};
static const char *const file_names[NFILES] = {
	"qgroups", "reservations", "inodes", "check", "legacy", "stats",
	"extents", "mappings", "status",
};
static const size_t file_caps[NFILES] = {
	256 << 10, 256 << 10, 1 << 20, 256 << 10, 4 << 10, 4 << 10,
	1 << 20, 1 << 20, 4 << 10,
};
static int file_fds[NFILES];
static int result_fd;

struct file_snap {
	char *buf;
	size_t len;	/* bytes kept in buf (at most its cap) */
	size_t total;	/* bytes of the whole file (after the edquot filter) */
	uint64_t hash;	/* FNV-1a of the bytes past buf's cap */
};

struct snap {
	struct file_snap f[NFILES];
	long long flushes;
	int legacy_on;	/* some switch is on */
	int quota_on;	/* qgroups has rows */
	int check_ok;
};

static char scratch[64 << 10];

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
	while (n--) {
		h ^= (unsigned char)*p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int open_in_dir(const char *name, int flags)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, flags);
	if (fd < 0) {
		printf("# fuzz: cannot open %s: %s\n", path, strerror(errno));
		fflush(stdout);
	}
	return fd;
}

/* Read a whole (seq_file) file from offset 0 into buf; returns its length
 * or -1. Bytes past cap are not kept: *hash gets their FNV-1a hash. */
static long read_whole(int fd, char *buf, size_t cap, size_t *kept, uint64_t *hash)
{
	size_t total;
	uint64_t h = 0xcbf29ce484222325ULL;
	ssize_t n;

	/* One pread from offset 0 regenerates a seq_file and returns all of
	 * it when it fits; read on only when the buffer filled. */
	do
		n = pread(fd, buf, cap, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	*kept = total = n;
	while ((size_t)n == cap || total > cap) {
		n = pread(fd, scratch, sizeof(scratch), total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		h = fnv(h, scratch, n);
		total += n;
	}
	if (hash)
		*hash = h;
	return (long)total;
}

static int read_errors;
static double now(void);
static double t_files[NFILES];
static unsigned long long bytes_files[NFILES], reads_files[NFILES];

static void read_file(struct file_snap *fs, int i)
{
	double t0 = now();
	long total = read_whole(file_fds[i], fs->buf, file_caps[i], &fs->len, &fs->hash);

	t_files[i] += now() - t0;
	if (total > 0)
		bytes_files[i] += total;
	reads_files[i]++;

	if (total < 0) {
		read_errors++;
		fs->len = fs->total = 0;
		fs->hash = 0;
		return;
	}
	fs->total = total;
	if (i == F_STATS && fs->len == fs->total) {
		/* Drop the edquot line: EDQUOT refusals count by design. */
		char *p = fs->buf, *end = fs->buf + fs->len;

		while (p < end) {
			char *nl = memchr(p, '\n', end - p);
			size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

			if (l >= 7 && !memcmp(p, "edquot ", 7)) {
				memmove(p, p + l, end - p - l);
				fs->len -= l;
				fs->total -= l;
				break;
			}
			p += l;
		}
	}
}

/* The value of "name N" in the stats buffer, -1 if absent. */
static long long stats_value(const struct file_snap *fs, const char *name)
{
	size_t nl = strlen(name);
	const char *p = fs->buf, *end = fs->buf + fs->len;

	while (p < end) {
		const char *e = memchr(p, '\n', end - p);

		if (!e)
			e = end;
		if ((size_t)(e - p) > nl && !memcmp(p, name, nl) && p[nl] == ' ')
			return strtoll(p + nl + 1, NULL, 10);
		p = e + 1;
	}
	return -1;
}

static int count_lines(const struct file_snap *fs)
{
	int n = 0;
	size_t i;

	for (i = 0; i < fs->len; i++)
		n += fs->buf[i] == '\n';
	return n;
}

static void read_snap(struct snap *s)
{
	int i;

	for (i = 0; i < NFILES; i++)
		read_file(&s->f[i], i);
	s->flushes = stats_value(&s->f[F_STATS], "flushes");
	s->legacy_on = memmem(s->f[F_LEGACY].buf, s->f[F_LEGACY].len, " on\n", 4) != NULL;
	s->quota_on = count_lines(&s->f[F_QGROUPS]) > 2;
	s->check_ok = s->f[F_CHECK].total == 3 && !memcmp(s->f[F_CHECK].buf, "ok\n", 3);
}

static void alloc_snap(struct snap *s)
{
	int i;

	for (i = 0; i < NFILES; i++) {
		s->f[i].buf = malloc(file_caps[i]);
		if (!s->f[i].buf) {
			perror("malloc");
			exit(1);
		}
	}
}

static int same_file(const struct file_snap *a, const struct file_snap *b)
{
	return a->total == b->total && a->hash == b->hash && a->len == b->len &&
	       !memcmp(a->buf, b->buf, a->len);
}

/* One line of text around the first difference of a and b. */
static void line_at(const struct file_snap *f, size_t at, char *out, size_t cap)
{
	size_t start = at, end;

	if (at >= f->len) {
		snprintf(out, cap, "(end of file, %zu bytes)", f->total);
		return;
	}
	while (start > 0 && f->buf[start - 1] != '\n')
		start--;
	end = start;
	while (end < f->len && f->buf[end] != '\n')
		end++;
	escape(f->buf + start, end - start, out, cap, 160);
}

static void describe_diff(const struct file_snap *a, const struct file_snap *b, const char *name)
{
	size_t i = 0, n = a->len < b->len ? a->len : b->len;
	char la[1400], lb[1400];

	while (i < n && a->buf[i] == b->buf[i])
		i++;
	line_at(a, i, la, sizeof(la));
	line_at(b, i, lb, sizeof(lb));
	printf("#   %s, first difference at byte %zu:\n#     - %s\n#     + %s\n", name, i, la, lb);
}

/* ---- the command generator ---- */

struct toks {
	int n;
	char t[MAX_TOKENS][TOKEN_CAP];
};

static void add(struct toks *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct toks *k, const char *fmt, ...)
{
	va_list ap;

	if (k->n >= MAX_TOKENS)
		return;
	va_start(ap, fmt);
	vsnprintf(k->t[k->n++], TOKEN_CAP, fmt, ap);
	va_end(ap);
}

/* Extreme numbers and number-like tokens, valid and not. */
static const char *const extreme_numbers[] = {
	"0", "1", "4095", "4096", "4097", "65535", "65536",
	"9223372036854775807",	/* 2^63 - 1 */
	"9223372036854775808",	/* 2^63 */
	"9223372036854771712",	/* 2^63 - 4096 */
	"18446744073709551615",	/* 2^64 - 1 */
	"18446744073709551616",	/* 2^64: too large */
	"99999999999999999999999",
	"8E", "8e", "1P", "16T", "16t", "8388607T", "8388608T", "16777215T",
	"17179869183G", "1T", "512G", "1G", "4g", "1M", "4k", "0K", "K", "",
	"-1", "+1", "0x1000", "1e3", "4KK", "4 K", "1.5M", "007", "00000000000000000000004096",
};

static const char *const bad_tokens[] = {
	"", "-1", "0x10", "1e3", "4KK", "K", "18446744073709551616", "none",
	"-e", "on", "off", "\xef\xbc\xab", "\xff", "1/2/3", "\xc3\xa9", "0/",
	"/0", "a/b", "fail=meta", "FAIL=META", "fail=data", "prealloc", "pertrans",
	"simple", "-i", "--", "\"\"", "''", "\\", "%s%n", "\r", "\x7f", "\x1b[0m",
	"0/5", "1/100", "cs0", "257", "5", "reset", "enable",
};

static const char *const verbs[] = {
	"quota", "subvol", "qgroup", "write", "fallocate", "writeback", "truncate",
	"unlink", "commit", "sync", "reserve", "free", "release", "changeset",
	"meta", "legacy", "reset", "stress", "bench", "clone", "snapshot",
};

static const char *const legacy_names[] = {
	"no_reserved_stage", "free_ignores_changeset", "release_by_length",
	"no_edquot_flush", "excl_iteration", "quick_inherit_parent_only",
	"inherit_never_inconsistent", "no_accounting_keeps_rsv",
	"rescan_skips_childless", "squota_quick_inherit",
};

/* A number token: decimal, or with a K/M/G/T suffix when v divides. */
static void add_num(struct rng *r, struct toks *k, uint64_t v)
{
	static const char sfx[] = "KMGT";
	int s = -1, i;

	if (v && chance(r, 300)) {
		for (i = 3; i >= 0; i--)
			if (!(v & ((1ULL << (10 * (i + 1))) - 1))) {
				s = below(r, i + 1);
				break;
			}
	}
	if (s < 0) {
		add(k, "%llu", (unsigned long long)v);
	} else {
		char c = sfx[s];

		if (chance(r, 300))
			c += 'a' - 'A';
		add(k, "%llu%c", (unsigned long long)(v >> (10 * (s + 1))), c);
	}
}

/* One io tree state: a line of `inodes`. */
struct state {
	uint64_t subvol, ino, start, end;
	int delalloc, reserved;
};

/* The next state of an `inodes` buffer from *pp (the header skipped). */
static int next_state(const char **pp, const char *end, struct state *st)
{
	while (*pp < end) {
		const char *p = *pp, *nl = memchr(p, '\n', end - p);
		unsigned long long a, b, c, d;
		char line[256], bits[64];
		size_t l;

		if (!nl)
			nl = end;
		*pp = nl + 1;
		l = nl - p;
		if (l >= sizeof(line))
			continue;
		memcpy(line, p, l);
		line[l] = 0;
		if (sscanf(line, "%llu %llu %llu %llu %63s", &a, &b, &c, &d, bits) != 5)
			continue;
		st->subvol = a;
		st->ino = b;
		st->start = c;
		st->end = d;
		st->delalloc = strstr(bits, "DELALLOC") != NULL;
		st->reserved = strstr(bits, "QGROUP_RESERVED") != NULL;
		return 1;
	}
	return 0;
}

/* Whether inode (subvol, ino) has a DELALLOC byte in [first, last]. */
static int touches_delalloc(const struct file_snap *f, uint64_t subvol, uint64_t ino,
			    uint64_t first, uint64_t last)
{
	const char *p = f->buf, *end = f->buf + f->len;
	struct state st;

	while (next_state(&p, end, &st))
		if (st.subvol == subvol && st.ino == ino && st.delalloc &&
		    st.start <= last && st.end >= first)
			return 1;
	return f->len != f->total;	/* cut: assume it does */
}

/* Inodes of concurrent reserve / free / release: never written, so never
 * DELALLOC, so a free or release there cannot unreserve dirty bytes. */
#define PRIVATE_INO 300
#define PRIVATE_INOS 256

/* Subvolumes the generator knows of: 5 and 256..260 (index 0..5). */
#define NSUB 6
static const uint64_t sub_ids[NSUB] = { 5, 256, 257, 258, 259, 260 };

/* Generation context. */
struct gen {
	struct rng r;
	int wild;		/* this command: arguments from the full pools */
	int quota_on;		/* as last seen */
	int concurrent;		/* no legacy switch on, no meta free / convert */
	unsigned subvols;	/* bit i: sub_ids[i] created since the last reset */
	/*
	 * Meta bytes the fuzzer itself holds per subvolume (a lower bound:
	 * zeroed by whatever may have dropped them), so that most `meta free`
	 * and `meta convert` commands free no more than was reserved; the rest
	 * may underflow on purpose (SPEC §1.1), which `check` then reports.
	 */
	uint64_t prealloc[NSUB], pertrans[NSUB];
	/* The meta command just generated, when it is one of those. */
	int meta_op;		/* 0 none, 1 reserve, 2 free, 3 convert */
	int meta_sub, meta_pertrans;
	uint64_t meta_bytes;
	int subvol_create;	/* index of the subvolume created, -1 */
	unsigned stress_runs;	/* valid small stress runs written */
	/* Sequential: the io trees before this command, to aim `free` and
	 * `release` at reserved bytes that are not dirty. */
	const struct file_snap *inodes;
	unsigned writer;	/* concurrent: this writer's number */
};

static void add_subvol(struct gen *g, struct toks *k)
{
	struct rng *r = &g->r;
	unsigned p = below(r, 100);

	if (!g->wild || p < 85) {
		/* An existing one, mostly. */
		unsigned i = below(r, NSUB);

		if (chance(r, 850) && !(g->subvols & (1u << i)) && i)
			i = 0;
		if (chance(r, 150) && i == 0 && g->subvols)
			while (!(g->subvols & (1u << (i = below(r, NSUB)))))
				;
		add_num(r, k, sub_ids[i]);
	} else if (p < 93) {
		add_num(r, k, 261 + below(r, 40));
	} else {
		add(k, "%s", PICK(r, extreme_numbers));
	}
}

static void add_ino(struct gen *g, struct toks *k)
{
	struct rng *r = &g->r;
	unsigned p = below(r, 100);

	if (!g->wild || p < 80)
		add_num(r, k, 256 + below(r, 4));
	else if (p < 90)
		add_num(r, k, 260 + below(r, 4));
	else if (p < 95)
		add_num(r, k, below(r, 256));
	else
		add(k, "%s", PICK(r, extreme_numbers));
}

/* An offset: mostly sector-aligned and under 1 MiB. */
static void add_off(struct gen *g, struct toks *k)
{
	static const uint64_t ext[] = {
		(1ULL << 63) - 1, 1ULL << 63, (1ULL << 63) - 4096, ~0ULL, 16ULL << 40,
		1ULL << 40, 1ULL << 62, (1ULL << 63) - (1ULL << 20),
	};
	struct rng *r = &g->r;
	unsigned p = below(r, 100);

	if (p < 75)
		add_num(r, k, below(r, 256) * 4096);
	else if (p < 90)
		add_num(r, k, below(r, 1 << 20));
	else if (p < 95 || !g->wild)
		add_num(r, k, PICK(r, ((const uint64_t[]){ 0, 1, 4095, 4096, 4097, 8191 })));
	else if (p < 98)
		add_num(r, k, PICK(r, ext));
	else
		add(k, "%s", PICK(r, extreme_numbers));
}

static void add_len(struct gen *g, struct toks *k)
{
	static const uint64_t ext[] = {
		16ULL << 40, 1ULL << 40, 1ULL << 63, (1ULL << 63) - 4096, ~0ULL, 1ULL << 30,
		512ULL << 30, 10ULL << 20,
	};
	struct rng *r = &g->r;
	unsigned p = below(r, 100);

	if (p < 60)
		add_num(r, k, (1 + below(r, 16)) * 4096);
	else if (p < 80)
		add_num(r, k, 1 + below(r, 64 << 10));
	else if (p < 92 || !g->wild)
		add_num(r, k, PICK(r, ((const uint64_t[]){ 1, 2048, 4095, 4096, 4097, 65536, 1 << 20 })));
	else if (p < 94)
		add(k, "0");
	else if (p < 98)
		add_num(r, k, PICK(r, ext));
	else
		add(k, "%s", PICK(r, extreme_numbers));
}

static void add_qgroup(struct gen *g, struct toks *k, int level0)
{
	static const char *const higher[] = { "1/100", "1/101", "1/102", "2/200", "2/201", "3/300" };
	static const char *const odd[] = {
		"0/0", "0/5", "1/0", "0/255", "65535/1", "65536/1", "1/281474976710655",
		"1/281474976710656", "18446744073709551615/1", "1/", "/1", "1//1", "a/b",
		"1/1K", "1K/1", "0x1/1", "1", "1/2/3", "-1/1", "1/-1", "00001/00100",
	};
	struct rng *r = &g->r;
	unsigned p = below(r, 100);

	if ((p < 90 || !g->wild) && level0) {
		struct toks t = { 0 };

		add_subvol(g, &t);
		add(k, "0/%s", t.t[0]);
	} else if (p < 90 || !g->wild) {
		add(k, "%s", PICK(r, higher));
	} else if (p < 95) {
		add(k, "%llu/%llu", (unsigned long long)below(r, 4), (unsigned long long)below(r, 400));
	} else {
		add(k, "%s", PICK(r, odd));
	}
}

/* A changeset name: mostly the one of the inode just added (a changeset
 * belongs to one inode, SPEC §5). */
static void add_cs(struct gen *g, struct toks *k)
{
	static const char *const odd[] = {
		"a", "abcdefghijklmnop", "abcdefghijklmnopq", "BAD", "cs-1", "_", "0",
		"0123456789abcdef", "cs\xc3\xa9", "cs.1", "none",
	};
	struct rng *r = &g->r;
	unsigned p = below(r, 100);

	if (p < 75 && k->n >= 5)
		add(k, "c%.6s_%.6s%s", k->t[k->n - 4], k->t[k->n - 3], chance(r, 300) ? "b" : "");
	else if (p < 95 || !g->wild)
		add(k, "cs%d", (int)below(r, 4));
	else
		add(k, "%s", PICK(r, odd));
	/* Keep it a name of [a-z0-9_]: suffixes of the numbers lowered. */
	{
		char *c = k->t[k->n - 1];

		if (p < 75)
			for (; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c += 'a' - 'A';
	}
}

static void add_limit(struct gen *g, struct toks *k)
{
	static const char *const sizes[] = {
		"none", "none", "0", "4K", "64K", "256K", "1M", "1M", "10M", "100M", "1G",
		"16T", "18446744073709551615", "9223372036854775808", "-1", "NONE", "1E",
	};
	struct rng *r = &g->r;

	if (chance(r, 300))
		add_num(r, k, (1 + below(r, 64)) * 16384);
	else
		add(k, "%s", g->wild ? PICK(r, sizes) : PICK(r, ((const char *const[]){
			"none", "none", "0", "64K", "256K", "1M", "1M", "4M", "10M", "1G", "16T" })));
}

static void gen_range(struct gen *g, struct toks *k)
{
	add_subvol(g, k);
	add_ino(g, k);
	add_off(g, k);
	add_len(g, k);
}

/* Concurrent: a range of one of the inodes nobody writes. */
static void gen_private_range(struct gen *g, struct toks *k)
{
	struct rng *r = &g->r;

	add_subvol(g, k);
	add_num(r, k, PRIVATE_INO + (g->writer * 4 + below(r, 4)) % PRIVATE_INOS);
	add_off(g, k);
	add_len(g, k);
}

/* A sector-aligned range inside a reserved, not dirty state of the io
 * trees before the command (what reserve left), or 0 if there is none. */
static int gen_reserved_range(struct gen *g, struct toks *k)
{
	struct rng *r = &g->r;
	const char *p, *end;
	struct state st;
	unsigned n = 0, pick;
	uint64_t first, sectors, a;

	if (!g->inodes)
		return 0;
	end = g->inodes->buf + g->inodes->len;
	for (p = g->inodes->buf; next_state(&p, end, &st);)
		n += st.reserved && !st.delalloc;
	if (!n)
		return 0;
	pick = below(r, n);
	for (p = g->inodes->buf; next_state(&p, end, &st);)
		if (st.reserved && !st.delalloc && !pick--)
			break;
	first = (st.start + 4095) & ~4095ULL;
	if (st.end + 1 < first + 4096)
		return 0;
	sectors = (st.end + 1 - first) / 4096;
	a = below(r, sectors);
	add_num(r, k, st.subvol);
	add_num(r, k, st.ino);
	add_num(r, k, first + a * 4096);
	add_num(r, k, (1 + below(r, sectors - a)) * 4096);
	return 1;
}

/* A malformed stress or bench line: refused at parse time. */
static void gen_bad_stress_bench(struct gen *g, struct toks *k)
{
	static const char *const lines[][6] = {
		{ "stress", "0", "1", "1" },
		{ "stress", "65", "1", "1" },
		{ "stress", "1000", "1000000", "1" },
		{ "stress", "1", "0", "1" },
		{ "stress", "1", "1" },
		{ "stress" },
		{ "stress", "1", "1", "1", "bogus" },
		{ "stress", "1", "1", "1", "shared", "extra" },
		{ "stress", "x", "1", "1" },
		{ "stress", "4", "18446744073709551616", "1" },
		{ "stress", "18446744073709551616", "4", "1" },
		{ "stress", "1", "1", "18446744073709551616" },
		{ "stress", "-1", "1", "1" },
		{ "stress", "0", "100000000", "7", "private" },
		{ "stress", "65", "100000000", "7", "shared" },
		{ "stress", "4", "0", "7", "private" },
		{ "stress", "4", "100000", "7", "Private" },
		{ "stress", "4", "100000", "x" },
		{ "stress", "4K", "100000", "1", "nope" },
		{ "bench", "bogus" },
		{ "bench", "full", "extra" },
		{ "bench", "smoke", "1" },
		{ "bench", "FULL" },
		{ "bench", "Smoke" },
		{ "bench", "0" },
		{ "bench", "full", "full" },
	};
	const char *const *l = PICK(&g->r, lines);
	int i;

	for (i = 0; i < 6 && l[i]; i++)
		add(k, "%s", l[i]);
}

/* A `meta` command: mostly one that frees or converts no more than the
 * fuzzer holds (g->meta_*), sometimes any (may underflow). */
static void gen_meta(struct gen *g, struct toks *k, int op)
{
	struct rng *r = &g->r;
	int s = below(r, NSUB), pt = chance(r, 500);
	uint64_t held;

	if (op != 1 && ((g->wild && chance(r, 300)) || chance(r, 30)) && !g->concurrent) {
		/* Any amount: an underflow is the point. */
		add(k, "meta");
		add(k, op == 2 ? "free" : "convert");
		add_subvol(g, k);
		if (chance(r, 800))
			add_num(r, k, (1 + below(r, 4)) * 16384);
		else
			add(k, "%s", PICK(r, ((const char *const[]){
				"0", "1000", "4096", "16383", "18446744073709535232",
				"9223372036854775808", "16T", "1M", "-16K" })));
		if (op == 2)
			add(k, "%s", pt ? "pertrans" : "prealloc");
		return;
	}
	if (!(g->subvols & (1u << s)) && s)
		s = 0;
	held = op == 3 ? g->prealloc[s] : pt ? g->pertrans[s] : g->prealloc[s];
	if (op != 1 && held < 16384)
		op = 1;
	add(k, "meta");
	add(k, op == 1 ? "reserve" : op == 2 ? "free" : "convert");
	add_num(r, k, sub_ids[s]);
	g->meta_bytes = op == 1 ? (1 + below(r, 4)) * 16384 : (1 + below(r, held / 16384)) * 16384;
	add_num(r, k, g->meta_bytes);
	if (op != 3)
		add(k, "%s", pt ? "pertrans" : "prealloc");
	g->meta_op = op;
	g->meta_sub = s;
	g->meta_pertrans = op != 3 && pt;
}

/* One well-formed (by grammar) command. */
static void gen_command(struct gen *g, struct toks *k)
{
	static const int weights[] = {
		/* 0 quota disable */ 3, /* 1 subvol create */ 8,
		/* 2 qgroup create */ 8, /* 3 qgroup destroy */ 3,
		/* 4 qgroup assign */ 10, /* 5 qgroup remove */ 4,
		/* 6 qgroup limit */ 12, /* 7 write */ 80,
		/* 8 write fail=meta */ 6, /* 9 fallocate */ 35,
		/* 10 writeback all */ 6, /* 11 writeback one */ 15,
		/* 12 truncate */ 20, /* 13 unlink */ 10,
		/* 14 commit */ 15, /* 15 sync */ 10,
		/* 16 reserve */ 40, /* 17 free cs */ 20,
		/* 18 free */ 12, /* 19 release */ 20,
		/* 20 changeset drop */ 10, /* 21 meta reserve */ 15,
		/* 22 meta free */ 10, /* 23 meta convert */ 8,
		/* 24 legacy off */ 4, /* 25 stress/bench bad */ 10,
		/* 26 stress small */ 2, /* 27 clone */ 14,
		/* 28 subvol snapshot */ 6, /* 29 subvol delete */ 4,
		/* 30 subvol create QG */ 4, /* 31 quota enable simple */ 3,
		/* 32 quota rescan */ 3, /* 33 quota bad */ 2,
		/* 34 legacy (rarely on) */ 1, /* 35 unknown verbs */ 2,
		/* 36 blanks only */ 2, /* 37 commit, or reset when concurrent */ 1,
	};
	struct rng *r = &g->r;
	/* Quotas off makes `quota enable` likely; few subvolumes, creates. */
	unsigned w_enable = g->quota_on ? 2 : 60;
	unsigned w_create = __builtin_popcount(g->subvols) < 3 ? 30 : 0;
	unsigned c, total = w_enable + w_create, p;

	for (c = 0; c < sizeof(weights) / sizeof(weights[0]); c++)
		total += weights[c];
	p = below(r, total);
	if (p < w_enable) {
		add(k, "quota");
		add(k, "enable");
		return;
	}
	p -= w_enable;
	if (p < w_create) {
		c = 1;
	} else {
		p -= w_create;
		for (c = 0; c < sizeof(weights) / sizeof(weights[0]); c++) {
			if (p < (unsigned)weights[c])
				break;
			p -= weights[c];
		}
	}
	switch (c) {
	case 0:
		add(k, "quota");
		add(k, "disable");
		return;
	case 1:
		add(k, "subvol");
		add(k, "create");
		if (!g->wild) {
			unsigned i = 1 + below(r, NSUB - 1);

			add_num(r, k, sub_ids[i]);
			g->subvol_create = i;
		} else {
			add(k, "%s", PICK(r, ((const char *const[]){
				"5", "0", "255", "261", "100", "18446744073709551615",
				"9223372036854775808", "1K", "256K" })));
		}
		return;
	case 2:
		add(k, "qgroup");
		add(k, "create");
		add_qgroup(g, k, chance(r, 100));
		return;
	case 3:
		add(k, "qgroup");
		add(k, "destroy");
		add_qgroup(g, k, chance(r, 200));
		return;
	case 4:
	case 5:
		add(k, "qgroup");
		add(k, c == 4 ? "assign" : "remove");
		if (chance(r, 700)) {
			add_qgroup(g, k, 1);
			add_qgroup(g, k, 0);
		} else if (chance(r, 700)) {
			add(k, "%s", PICK(r, ((const char *const[]){ "1/100", "1/101", "1/102" })));
			add(k, "%s", PICK(r, ((const char *const[]){ "2/200", "2/201", "3/300" })));
		} else {
			add_qgroup(g, k, chance(r, 500));
			add_qgroup(g, k, chance(r, 500));
		}
		return;
	case 6:
		add(k, "qgroup");
		add(k, "limit");
		if (chance(r, 500))
			add(k, "-e");
		add_limit(g, k);
		add_qgroup(g, k, chance(r, 600));
		return;
	case 7:
	case 8:
		add(k, "write");
		gen_range(g, k);
		if (c == 8)
			add(k, "fail=meta");
		return;
	case 9:
		add(k, "fallocate");
		gen_range(g, k);
		return;
	case 10:
		add(k, "writeback");
		return;
	case 11:
		add(k, "writeback");
		add_subvol(g, k);
		add_ino(g, k);
		return;
	case 12:
		add(k, "truncate");
		add_subvol(g, k);
		add_ino(g, k);
		if (chance(r, 850))
			add_num(r, k, below(r, 1 << 20));
		else
			add_off(g, k);
		return;
	case 13:
		add(k, "unlink");
		add_subvol(g, k);
		add_ino(g, k);
		return;
	case 14:
		add(k, "commit");
		return;
	case 15:
		add(k, "sync");
		return;
	case 16:
		add(k, "reserve");
		if (g->concurrent)
			gen_private_range(g, k);
		else
			gen_range(g, k);
		add_cs(g, k);
		return;
	case 17:
	case 18:
	case 19:
		add(k, c == 19 ? "release" : "free");
		if (g->concurrent)
			gen_private_range(g, k);
		else if (g->wild || chance(r, 150) || !gen_reserved_range(g, k))
			gen_range(g, k);
		if (c == 17)
			add_cs(g, k);
		return;
	case 20:
		add(k, "changeset");
		add(k, "drop");
		if (chance(r, 700)) {
			struct toks t = { 0 };

			add_subvol(g, &t);
			add_ino(g, &t);
			add(k, "c%.6s_%.6s%s", t.t[0], t.t[1], chance(r, 300) ? "b" : "");
			for (char *q = k->t[k->n - 1]; *q; q++)
				if (*q >= 'A' && *q <= 'Z')
					*q += 'a' - 'A';
		} else {
			add_cs(g, k);
		}
		return;
	case 21:
	case 22:
	case 23:
		gen_meta(g, k, c - 20);
		return;
	case 24:
		add(k, "legacy");
		add(k, "%s", PICK(r, legacy_names));
		add(k, "off");
		return;
	case 25:
		gen_bad_stress_bench(g, k);
		return;
	case 26: {
		unsigned t = 1 + below(r, 4);

		add(k, "stress");
		add(k, "%u", t);
		add(k, "%u", 1 + (unsigned)below(r, STRESS_BUDGET / t));
		add(k, "%llu", (unsigned long long)below(r, 1000));
		if (chance(r, 600))
			add(k, "%s", chance(r, 500) ? "shared" : "private");
		g->stress_runs++;
		return;
	}
	case 27:
		add(k, "clone");
		add_subvol(g, k);
		add_ino(g, k);
		if (chance(r, 800)) {
			/* Sector-aligned, as clone wants. */
			add_num(r, k, below(r, 256) * 4096);
			add_num(r, k, (1 + below(r, 16)) * 4096);
			add_subvol(g, k);
			add_ino(g, k);
			add_num(r, k, below(r, 256) * 4096);
		} else {
			add_off(g, k);
			add_len(g, k);
			add_subvol(g, k);
			add_ino(g, k);
			add_off(g, k);
		}
		return;
	case 28:
		add(k, "subvol");
		add(k, "snapshot");
		add_subvol(g, k);
		add_num(r, k, chance(r, 800) ? 261 + below(r, 15) : below(r, 300));
		while (chance(r, 300))
			add_qgroup(g, k, chance(r, 200));
		return;
	case 29:
		add(k, "subvol");
		add(k, "delete");
		add_subvol(g, k);
		return;
	case 30:
		add(k, "subvol");
		add(k, "create");
		add_num(r, k, 261 + below(r, 15));
		do
			add_qgroup(g, k, chance(r, 200));
		while (chance(r, 300));
		return;
	case 31:
		add(k, "quota");
		add(k, "enable");
		add(k, "simple");
		return;
	case 32:
		add(k, "quota");
		add(k, "rescan");
		return;
	case 33:
		add(k, "quota");
		if (chance(r, 500))
			add(k, "%s", PICK(r, ((const char *const[]){
				"on", "off", "Enable", "enable simple", "rescan", "disable now", "enabled" })));
		return;
	case 34:
		add(k, "legacy");
		add(k, "%s", PICK(r, legacy_names));
		/* Rare: a switch on spoils `check` until the next reset. */
		add(k, "%s", !g->concurrent && chance(r, 350) ? "on" : "off");
		return;
	case 35:
		add(k, "%s", PICK(r, ((const char *const[]){
			"qgroup show", "show", "help", "frobnicate", "Quota", "QUOTA", "rescan",
			"snapshot", "delete", "btrfs", "#", "ok" })));
		if (chance(r, 500))
			add(k, "%s", PICK(r, verbs));
		return;
	case 36:
		/* An empty token list: the join gives blanks only. */
		return;
	default:
		add(k, "%s", g->concurrent && chance(r, 300) ? "reset" : "commit");
		return;
	}
}

/* Join tokens into buf; sometimes with odd blanks. Returns the length. */
static size_t join(struct rng *r, const struct toks *k, char *buf)
{
	size_t len = 0;
	int odd = chance(r, 120), i;

	if (odd && chance(r, 400))
		for (i = below(r, 4); i >= 0; i--)
			buf[len++] = chance(r, 700) ? ' ' : '\t';
	for (i = 0; i < k->n; i++) {
		size_t l = strlen(k->t[i]);

		if (i) {
			int j, n = odd ? 1 + below(r, 5) : 1;

			for (j = 0; j < n; j++)
				buf[len++] = odd && chance(r, 300) ? '\t' : ' ';
		}
		memcpy(buf + len, k->t[i], l);
		len += l;
	}
	if (odd && chance(r, 400))
		for (i = below(r, 4); i >= 0; i--)
			buf[len++] = chance(r, 700) ? ' ' : '\t';
	if (odd && chance(r, 300)) {
		const char *tails[] = { "", "\n\n", "\r\n", "\n ", " \n", "\t\n", "\n\t" };
		const char *t = PICK(r, tails);

		memcpy(buf + len, t, strlen(t));
		len += strlen(t);
	} else if (chance(r, 800)) {
		buf[len++] = '\n';
	}
	if (!len)
		buf[len++] = chance(r, 500) ? ' ' : '\n';
	return len;
}

static void mutate_tokens(struct gen *g, struct toks *k)
{
	struct rng *r = &g->r;
	int m, rounds = 1 + below(r, 3);

	while (rounds--) {
		int i = k->n ? below(r, k->n) : 0, j = k->n ? below(r, k->n) : 0;
		char tmp[TOKEN_CAP];

		m = below(r, 9);
		switch (m) {
		case 0: /* drop */
			if (k->n > 0) {
				memmove(k->t[i], k->t[i + 1], (k->n - i - 1) * TOKEN_CAP);
				k->n--;
			}
			break;
		case 1: /* duplicate */
			if (k->n > 0 && k->n < MAX_TOKENS) {
				memmove(k->t[i + 1], k->t[i], (k->n - i) * TOKEN_CAP);
				k->n++;
			}
			break;
		case 2: /* swap */
			memcpy(tmp, k->t[i], TOKEN_CAP);
			memcpy(k->t[i], k->t[j], TOKEN_CAP);
			memcpy(k->t[j], tmp, TOKEN_CAP);
			break;
		case 3: /* a bad token in place of one */
			if (k->n > 0)
				snprintf(k->t[i], TOKEN_CAP, "%s", PICK(r, bad_tokens));
			break;
		case 4: /* an extreme number in place of one */
			if (k->n > 0)
				snprintf(k->t[i], TOKEN_CAP, "%s", PICK(r, extreme_numbers));
			break;
		case 5: /* a verb inserted */
			if (k->n < MAX_TOKENS) {
				memmove(k->t[i + 1], k->t[i], (k->n - i) * TOKEN_CAP);
				snprintf(k->t[i], TOKEN_CAP, "%s", PICK(r, verbs));
				k->n++;
			}
			break;
		case 6: /* cut the list */
			if (k->n > 1)
				k->n = 1 + below(r, k->n - 1);
			break;
		case 7: /* upper case */
			if (k->n > 0) {
				char *p;

				for (p = k->t[i]; *p; p++)
					if (*p >= 'a' && *p <= 'z')
						*p -= 'a' - 'A';
			}
			break;
		case 8: /* a long token */
			if (k->n > 0) {
				int l = 17 + below(r, TOKEN_CAP - 18), q;
				char c = PICK(r, ((const char[]){ '9', 'a', 'K', '/', '0' }));

				for (q = 0; q < l; q++)
					k->t[i][q] = c;
				k->t[i][l] = 0;
			}
			break;
		}
	}
}

static void insert_bytes(char *buf, size_t *len, size_t at, const char *b, size_t n)
{
	memmove(buf + at + n, buf + at, *len - at);
	memcpy(buf + at, b, n);
	*len += n;
}

static size_t mutate_bytes(struct gen *g, char *buf, size_t len)
{
	static const char *const non_utf8[] = {
		"\x80", "\xc0\x80", "\xed\xa0\x80", "\xff", "\xfe", "\xc3", "\xe2\x82",
		"\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xc1\xbf",
	};
	static const char *const utf8[] = {
		"\xc3\xa9", "\xe2\x80\xa8", "\xef\xbb\xbf", "\xf0\x9f\x98\x80", "\xc2\xa0",
		"\xe3\x80\x80",
	};
	struct rng *r = &g->r;
	size_t at = below(r, len + 1);
	const char *s;

	switch (below(r, 7)) {
	case 0: /* truncation (at least one byte kept) */
		return len > 1 ? 1 + below(r, len - 1) : len;
	case 1:
		s = PICK(r, non_utf8);
		insert_bytes(buf, &len, at, s, strlen(s));
		return len;
	case 2:
		s = PICK(r, utf8);
		insert_bytes(buf, &len, at, s, strlen(s));
		return len;
	case 3: /* embedded NUL */
		insert_bytes(buf, &len, at, "", 1);
		return len;
	case 4: /* a flipped bit */
		if (len)
			buf[below(r, len)] ^= 1 << below(r, 8);
		return len;
	case 5: /* a replaced byte */
		if (len)
			buf[below(r, len)] = (char)below(r, 256);
		return len;
	default: /* a control character */
		s = PICK(r, ((const char *const[]){ "\r", "\n", "\v", "\f", "\x01", "\x1b", "\x7f", "\b" }));
		insert_bytes(buf, &len, at, s, 1);
		return len;
	}
}

/* Pad to over 1024 bytes (or to exactly 1024 / 1023: still valid). */
static size_t overlong(struct gen *g, char *buf, size_t len)
{
	struct rng *r = &g->r;
	static const size_t sizes[] = { 1023, 1024, 1025, 1026, 2048, 4095, 4096, 4097, 65536, 65537 };
	size_t want = PICK(r, sizes), i;
	char pad = PICK(r, ((const char[]){ ' ', ' ', '\t', 'a', '0', '\n' }));
	int tail_newline = chance(r, 500);

	if (chance(r, 50))
		want = CMD_CAP;	/* 1 MiB */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	for (i = len; i < want; i++)
		buf[i] = pad;
	if (tail_newline && want > 0)
		buf[want - 1] = '\n';
	return want > len ? want : len;
}

static size_t junk(struct gen *g, char *buf)
{
	struct rng *r = &g->r;
	size_t n = 1 + below(r, chance(r, 950) ? 64 : 1024), i;
	static const char alpha[] = "0123456789KMGTkmgt /\t\nabcdefqrstuvwxyz_=-";
	int kind = below(r, 3);

	for (i = 0; i < n; i++) {
		if (kind == 0)
			buf[i] = (char)below(r, 256);
		else if (kind == 1)
			buf[i] = (char)(0x20 + below(r, 0x5f));
		else
			buf[i] = alpha[below(r, sizeof(alpha) - 1)];
	}
	return n;
}

/* ---- the safety filter ---- */

/* parse_size of the module (SPEC §2): decimal, optional K/M/G/T. */
static int parse_size(const char *t, size_t n, uint64_t *out)
{
	unsigned shift = 0;
	uint64_t v = 0;
	size_t i;

	if (n && strchr("kKmMgGtT", t[n - 1])) {
		char c = t[n - 1] | 0x20;

		shift = c == 'k' ? 10 : c == 'm' ? 20 : c == 'g' ? 30 : 40;
		n--;
	}
	if (!n)
		return -1;
	for (i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (t[i] - '0')) / 10)
			return -1;
		v = v * 10 + (t[i] - '0');
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

/* Whether the module could take buf as a valid `bench`, a `stress` over
 * STRESS_BUDGET operations, or (concurrent) a `legacy NAME on`. Tokens as
 * the module splits them; NUL and UTF-8 are ignored: erring on the safe
 * side. */
static int dangerous(const char *buf, size_t len, int concurrent)
{
	const char *tok[10];
	size_t tl[10];
	int n = 0;
	size_t i = 0;

	if (len > MAX_COMMAND)
		return 0;
	if (len && buf[len - 1] == '\n')
		len--;
	while (i < len && n < 10) {
		while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (i >= len)
			break;
		tok[n] = buf + i;
		while (i < len && buf[i] != ' ' && buf[i] != '\t')
			i++;
		tl[n] = buf + i - tok[n];
		n++;
	}
#define IS(j, s) (tl[j] == strlen(s) && !memcmp(tok[j], s, tl[j]))
	if (n >= 1 && IS(0, "bench"))
		return n == 1 || (n == 2 && (IS(1, "full") || IS(1, "smoke")));
	if (n >= 4 && n <= 5 && IS(0, "stress")) {
		uint64_t t, o;

		if (parse_size(tok[1], tl[1], &t) || parse_size(tok[2], tl[2], &o))
			return 0;
		if (t < 1 || t > 64 || o < 1)
			return 0;
		return o > STRESS_BUDGET / t;
	}
	if (concurrent && n == 3 && IS(0, "legacy") && IS(2, "on"))
		return 1;
	/* Concurrent writers cannot know what they hold: no meta free. */
	if (concurrent && n >= 2 && IS(0, "meta") && (IS(1, "free") || IS(1, "convert")))
		return 1;
	/* Nor what is dirty: free and release only on inodes nobody writes. */
	if (concurrent && n >= 3 && (IS(0, "write") || IS(0, "free") || IS(0, "release"))) {
		uint64_t ino;
		int private;

		if (parse_size(tok[2], tl[2], &ino))
			return 0;
		private = ino >= PRIVATE_INO && ino < PRIVATE_INO + PRIVATE_INOS;
		return IS(0, "write") ? private : !private;
	}
#undef IS
	return 0;
}

static unsigned long filtered;

/* One command into buf; returns its length. */
static size_t generate(struct gen *g, char *buf)
{
	int tries;

	for (tries = 0; tries < 20; tries++) {
		struct toks k;
		size_t len;
		unsigned p = below(&g->r, 1000);

		k.n = 0;
		g->meta_op = 0;
		g->subvol_create = -1;
		g->wild = chance(&g->r, 150);
		if (p < 20) {
			len = junk(g, buf);
		} else {
			gen_command(g, &k);
			if (p < 140)
				mutate_tokens(g, &k);
			len = join(&g->r, &k, buf);
			if (p >= 100 && p < 200)
				len = mutate_bytes(g, buf, len);
			if (p >= 190 && p < 200)
				len = overlong(g, buf, len);
		}
		if (p < 200) {
			/* Mutated: no longer the command the generator tracks. */
			g->meta_op = 0;
			g->subvol_create = -1;
		}
		if (!dangerous(buf, len, g->concurrent))
			return len;
		filtered++;
	}
	memcpy(buf, "commit\n", 7);
	g->meta_op = 0;
	g->subvol_create = -1;
	return 7;
}

/* ---- reporting ---- */

enum { V_RETURN, V_CHANGED, V_RESULT, V_CHECK, V_CONC_WRITERS, V_CONC_READS,
       V_CONC_CHECK, V_ANSWERS, NV };
static const char *const v_names[NV] = {
	"write(2) returns the length or -1 with an errno",
	"failed commands changed nothing",
	"result agrees with write status",
	"check ok after every command",
	"concurrent writers: every writer finished cleanly",
	"concurrent reads: check ok throughout",
	"concurrent writers: check ok after",
	"module answers after",
};
static unsigned long violations[NV];
static int repro_dumped;

/* The commands since the last successful reset. */
static struct {
	unsigned long index;
	size_t len;
	char bytes[REPRO_BYTES];
} *history;
static unsigned hist_n, hist_start;
static unsigned long hist_lost;

static void hist_clear(void)
{
	hist_n = hist_start = 0;
	hist_lost = 0;
}

static void hist_add(unsigned long index, const char *buf, size_t len)
{
	unsigned slot = (hist_start + hist_n) % REPRO_CAP;

	if (hist_n == REPRO_CAP) {
		hist_start = (hist_start + 1) % REPRO_CAP;
		hist_lost++;
		hist_n--;
	}
	history[slot].index = index;
	history[slot].len = len;
	memcpy(history[slot].bytes, buf, len < REPRO_BYTES ? len : REPRO_BYTES);
	hist_n++;
}

static char esc[CMD_CAP / 8];

static void dump_repro(unsigned long seed)
{
	unsigned i;

	if (repro_dumped++)
		return;
	printf("# repro: seed %lu, the commands since the last reset%s (write each with printf '%%b' 'LINE' > control; \\xHH is a byte):\n",
	       seed, hist_lost ? " (the oldest lost)" : "");
	for (i = 0; i < hist_n; i++) {
		typeof(history[0]) *h = &history[(hist_start + i) % REPRO_CAP];

		if (h->len > REPRO_BYTES)
			printf("# repro: %lu <%zu bytes, over 1024>\n", h->index, h->len);
		else {
			escape(h->bytes, h->len, esc, sizeof(esc), REPRO_BYTES);
			printf("# repro: %lu %s\n", h->index, esc);
		}
	}
}

/* The start of a violation report: the kind, the command. */
static int report(int kind, unsigned long index, const char *buf, size_t len,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int report(int kind, unsigned long index, const char *buf, size_t len,
		  const char *fmt, ...)
{
	va_list ap;

	if (violations[kind]++ >= SHOW_VIOLATIONS)
		return 0;
	escape(buf, len, esc, sizeof(esc), 300);
	printf("# violation (%s): command %lu '%s': ", v_names[kind], index, esc);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Counters of one writer (shared with the parent in the concurrent phase). */
struct counts {
	unsigned long commands, ok, failed, bad_returns;
	unsigned long err[NERRNO + 1];
};

static void print_errnos(const char *what, const struct counts *c)
{
	unsigned i;

	printf("# fuzz: %serrnos", what);
	for (i = 0; i < NERRNO; i++)
		if (c->err[i])
			printf(" %s=%lu", errnos[i].name, c->err[i]);
	if (c->err[NERRNO])
		printf(" other=%lu", c->err[NERRNO]);
	printf("\n");
}

/* The first max tokens of buf as the module splits them (one trailing
 * newline allowed; blanks are spaces and tabs); the token count, or -1 for
 * a command the module refuses before splitting (too long, a NUL). */
static int splitn(const char *buf, size_t len, const char **tok, size_t *tl, int max)
{
	size_t i = 0;
	int n = 0;

	if (len > MAX_COMMAND || memchr(buf, 0, len))
		return -1;
	if (len && buf[len - 1] == '\n')
		len--;
	for (;;) {
		while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (i >= len)
			return n;
		if (n < max)
			tok[n] = buf + i;
		while (i < len && buf[i] != ' ' && buf[i] != '\t')
			i++;
		if (n < max)
			tl[n] = buf + i - tok[n];
		n++;
	}
}

#define TOK_IS(j, s) (tl[j] == strlen(s) && !memcmp(tok[j], s, tl[j]))

/* Whether buf is exactly `reset`. */
static int is_reset(const char *buf, size_t len)
{
	const char *tok[2];
	size_t tl[2];

	return splitn(buf, len, tok, tl, 2) == 1 && TOK_IS(0, "reset");
}

/* Whether buf is a `meta free` or `meta convert`. */
static int is_meta_release(const char *buf, size_t len)
{
	const char *tok[2];
	size_t tl[2];

	return splitn(buf, len, tok, tl, 2) >= 2 && TOK_IS(0, "meta") &&
	       (TOK_IS(1, "free") || TOK_IS(1, "convert"));
}

/* Whether buf is a `free` or `release` whose rounded range held DELALLOC
 * bytes in inodes (the io trees before it): it unreserves dirty bytes, as
 * upstream's raw API would, and `check` then says so. */
static int frees_dirty(const char *buf, size_t len, const struct file_snap *inodes)
{
	const char *tok[5];
	size_t tl[5];
	uint64_t s, ino, off, n;
	int cnt = splitn(buf, len, tok, tl, 5);

	if (cnt < 5 || !(TOK_IS(0, "free") || TOK_IS(0, "release")))
		return 0;
	if (parse_size(tok[1], tl[1], &s) || parse_size(tok[2], tl[2], &ino) ||
	    parse_size(tok[3], tl[3], &off) || parse_size(tok[4], tl[4], &n) || !n)
		return 1;	/* (it succeeded: cannot be) */
	return touches_delalloc(inodes, s, ino, off & ~4095ULL,
				((off + n + 4095) & ~4095ULL) - 1);
}

/* Whether each line of `check` is an underflow report (when underflows
 * are allowed) or an unreserved dirty range (when those are). */
static int check_only_allowed(const struct file_snap *f, int underflows, int unreserved)
{
	static const char uf[] = " qgroup counter underflow(s) happened";
	const char *p = f->buf, *end = f->buf + f->len;

	if (f->len != f->total || !f->len)
		return 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t l;

		if (!nl)
			nl = end;
		l = nl - p;
		if (strncmp(p, "violation: ", 11))
			return 0;
		if (!(underflows && memmem(p, l, uf, strlen(uf))) &&
		    !(unreserved && !strncmp(p, "violation: inode ", 17) && memmem(p, l, "] unreserved", 12)))
			return 0;
		p = nl + 1;
	}
	return 1;
}

/* Read result; check it agrees with the write's return. */
static char result_buf[4096];

static int read_result(void)
{
	size_t kept;
	long n = read_whole(result_fd, result_buf, sizeof(result_buf) - 1, &kept, NULL);

	if (n < 0) {
		read_errors++;
		kept = 0;
	}
	result_buf[kept] = 0;
	return 0;
}

/* "" if `result` agrees with (ret, err), else what is wrong. */
static const char *result_disagrees(ssize_t ret, int err)
{
	static char why[256];
	char tmp[32];

	if (ret >= 0) {
		if (!strncmp(result_buf, "ok", 2) && (result_buf[2] == ' ' || result_buf[2] == '\n' || !result_buf[2]))
			return "";
		snprintf(why, sizeof(why), "the write succeeded");
		return why;
	}
	{
		const char *name = errno_str(err, tmp, sizeof(tmp));
		size_t l = strlen(name);

		if (!strncmp(result_buf, "error ", 6) && !strncmp(result_buf + 6, name, l) &&
		    (result_buf[6 + l] == ' ' || result_buf[6 + l] == '\n' || !result_buf[6 + l]))
			return "";
		snprintf(why, sizeof(why), "the write failed with %s", name);
		return why;
	}
}

/* ---- the phases ---- */

static unsigned long seed;

static void count(struct counts *c, ssize_t ret, size_t len, int err)
{
	c->commands++;
	if (ret == (ssize_t)len) {
		c->ok++;
	} else if (ret < 0) {
		c->failed++;
		c->err[errno_index(err)]++;
	} else {
		c->bad_returns++;
	}
}

static struct snap snaps[2];
static char cmd[CMD_CAP + 64];

static void sequential(int ctl, unsigned long ncmds, struct counts *c)
{
	struct snap *prev = &snaps[0], *cur = &snaps[1], *t;
	struct gen g = { .r = { seed * 0x2545f4914f6cdd1dULL + 1 } };
	unsigned long i, next_reset = 0, comparisons = 0, flush_exempt = 0;
	unsigned long resets = 0, tainted_cmds = 0, legacy_on_cmds = 0, forced_resets = 0;
	unsigned long meta_tainted_cmds = 0, meta_taints = 0, dirty_tainted_cmds = 0, dirty_taints = 0;
	int tainted, meta_tainted = 0, dirty_tainted = 0;
	double t0 = now(), slowest = 0, t_write = 0, t_read = 0;
	unsigned long reset_every = getenv("QGROUP_RS_FUZZ_RESET") ? strtoul(getenv("QGROUP_RS_FUZZ_RESET"), NULL, 0) : 500;
	char slow_cmd[400] = "", chk[400];

	read_snap(prev);
	tainted = prev->legacy_on;
	for (i = 0; i < ncmds; i++) {
		size_t len;
		ssize_t ret;
		int err = 0, s;
		double ts;
		const char *why;

		g.quota_on = prev->quota_on;
		g.inodes = &prev->f[F_INODES];
		if (i == next_reset) {
			len = 6;
			memcpy(cmd, "reset\n", 6);
			g.meta_op = 0;
			g.subvol_create = -1;
			next_reset = i + reset_every / 2 + below(&g.r, reset_every);
		} else {
			len = generate(&g, cmd);
		}
		hist_add(i, cmd, len);
		ts = now();
		ret = write(ctl, cmd, len);
		if (ret < 0)
			err = errno;
		ts = now() - ts;
		if (ts > slowest) {
			slowest = ts;
			escape(cmd, len, slow_cmd, sizeof(slow_cmd), 120);
		}
		count(c, ret, len, err);
		t_write += ts;
		ts = now();
		read_result();
		read_snap(cur);
		t_read += now() - ts;

		if (ret >= 0 && ret != (ssize_t)len)
			report(V_RETURN, i, cmd, len, "write returned %zd of %zu", ret, len);
		why = result_disagrees(ret, err);
		if (*why) {
			escape(result_buf, strlen(result_buf), esc, sizeof(esc), 200);
			if (report(V_RESULT, i, cmd, len, "%s, result '%s'", why, esc))
				dump_repro(seed);
		}
		if (ret < 0) {
			if (err == EDQUOT && cur->flushes != prev->flushes) {
				flush_exempt++;
			} else {
				int f, shown = 0;

				comparisons++;
				for (f = 0; f < NFILES; f++) {
					if (same_file(&prev->f[f], &cur->f[f]))
						continue;
					if (!shown) {
						char tmp[32];

						shown = 1;
						escape(result_buf, strlen(result_buf), esc, sizeof(esc), 200);
						if (!report(V_CHANGED, i, cmd, len, "failed with %s but changed the state; result '%s'",
							    errno_str(err, tmp, sizeof(tmp)), esc))
							break;
						dump_repro(seed);
					}
					describe_diff(&prev->f[f], &cur->f[f], file_names[f]);
				}
			}
		}

		/* What the generator knows of the instance. */
		if (ret == (ssize_t)len) {
			if (g.subvol_create >= 0)
				g.subvols |= 1u << g.subvol_create;
			if (g.meta_op == 1 && g.meta_pertrans)
				g.pertrans[g.meta_sub] += g.meta_bytes;
			else if (g.meta_op == 1)
				g.prealloc[g.meta_sub] += g.meta_bytes;
			else if (g.meta_op == 2 && g.meta_pertrans)
				g.pertrans[g.meta_sub] -= g.meta_bytes;
			else if (g.meta_op == 2)
				g.prealloc[g.meta_sub] -= g.meta_bytes;
			else if (g.meta_op == 3) {
				g.prealloc[g.meta_sub] -= g.meta_bytes;
				g.pertrans[g.meta_sub] += g.meta_bytes;
			} else if (is_meta_release(cmd, len)) {
				/* Any amount: may underflow, on purpose. */
				meta_taints += !meta_tainted;
				meta_tainted = 1;
			}
			if (frees_dirty(cmd, len, &prev->f[F_INODES])) {
				dirty_taints += !dirty_tainted;
				dirty_tainted = 1;
			}
		}
		if (stats_value(&cur->f[F_STATS], "commits") != stats_value(&prev->f[F_STATS], "commits"))
			memset(g.pertrans, 0, sizeof(g.pertrans));	/* a commit frees them */
		if (!cur->quota_on) {
			memset(g.pertrans, 0, sizeof(g.pertrans));
			memset(g.prealloc, 0, sizeof(g.prealloc));
		}
		tainted |= cur->legacy_on;
		if (ret == (ssize_t)len && is_reset(cmd, len)) {
			resets++;
			tainted = cur->legacy_on;
			meta_tainted = 0;
			dirty_tainted = 0;
			g.subvols = 0;
			memset(g.pertrans, 0, sizeof(g.pertrans));
			memset(g.prealloc, 0, sizeof(g.prealloc));
			hist_clear();
		}

		if (tainted) {
			tainted_cmds++;
			if (cur->legacy_on)
				legacy_on_cmds++;
			/* Keep the legacy stretches short. */
			if (next_reset > i + 150)
				next_reset = i + 50 + below(&g.r, 100);
		} else {
			s = cur->check_ok;
			if (!s && (meta_tainted || dirty_tainted))
				s = check_only_allowed(&cur->f[F_CHECK], meta_tainted, dirty_tainted);
			meta_tainted_cmds += meta_tainted;
			dirty_tainted_cmds += dirty_tainted;
			if (!s) {
				line_at(&cur->f[F_CHECK], 0, chk, sizeof(chk));
				if (report(V_CHECK, i, cmd, len, "check says '%s'", chk)) {
					dump_repro(seed);
					escape(result_buf, strlen(result_buf), esc, sizeof(esc), 200);
					printf("#   result '%s'\n", esc);
				}
				/* Start again from a fresh instance. */
				next_reset = i + 1;
				forced_resets++;
			}
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	printf("# fuzz: seed=%lu commands=%lu ok=%lu failed=%lu comparisons=%lu edquot_after_flush=%lu\n",
	       seed, c->commands, c->ok, c->failed, comparisons, flush_exempt);
	print_errnos("", c);
	printf("# fuzz: resets=%lu (forced by a check violation: %lu) legacy_tainted_commands=%lu (a switch on: %lu)\n",
	       resets, forced_resets, tainted_cmds, legacy_on_cmds);
	printf("# fuzz: raw API misuse allowed by check until the next reset: meta free/convert of any amount %lu times (%lu commands), free/release of dirty bytes %lu times (%lu commands)\n",
	       meta_taints, meta_tainted_cmds, dirty_taints, dirty_tainted_cmds);
	{
		int f;

		printf("# fuzz: reading (seconds, average bytes):");
		for (f = 0; f < NFILES; f++)
			printf(" %s %.1f %llu", file_names[f], t_files[f],
			       reads_files[f] ? bytes_files[f] / reads_files[f] : 0);
		printf("\n");
	}
	printf("# fuzz: filtered=%lu stress_runs=%u read_errors=%d\n", filtered, g.stress_runs, read_errors);
	printf("# fuzz: sequential %.1f s (writes %.1f s, reading the files %.1f s), %.0f commands/s, slowest command %.1f ms: '%s'\n",
	       now() - t0, t_write, t_read, c->commands / (now() - t0), slowest * 1e3, slow_cmd);
	fflush(stdout);
}

static void writer(unsigned w, unsigned long n, struct counts *c)
{
	struct gen g = { .r = { (seed + 1) * 0x9e3779b97f4a7c15ULL + w * 7919 }, .concurrent = 1,
			 .quota_on = 1, .subvols = 0xf, .writer = w };
	int ctl = open_in_dir("control", O_WRONLY);
	unsigned long i;

	if (ctl < 0)
		_exit(2);
	for (i = 0; i < n; i++) {
		size_t len = generate(&g, cmd);
		ssize_t ret = write(ctl, cmd, len);
		int err = ret < 0 ? errno : 0;

		/* Writers seldom see quotas off: bias to re-enable them. */
		g.quota_on = !(ret < 0 && err == ENOTCONN);
		count(c, ret, len, err);
	}
	close(ctl);
	_exit(0);
}

static ssize_t run_cmd(int ctl, const char *s)
{
	ssize_t ret = write(ctl, s, strlen(s));
	int err = errno;

	read_result();
	errno = err;
	return ret;
}

static void concurrent(int ctl, unsigned long ncmds, unsigned writers, struct counts *total)
{
	struct counts *shared;
	struct snap *s = &snaps[0];
	unsigned long share = ncmds / 4 / (writers ? writers : 1), reads = 0, bad_reads = 0;
	unsigned w, alive;
	pid_t pids[64];
	double t0 = now();
	static const char *const setup[] = {
		"reset", "quota enable", "subvol create 256", "subvol create 257", "subvol create 258",
		"qgroup create 1/100", "qgroup create 2/200", "qgroup assign 0/256 1/100",
		"qgroup assign 0/257 1/100", "qgroup assign 1/100 2/200", "qgroup limit -e 4M 1/100",
		"qgroup limit 16M 2/200", "qgroup limit 2M 0/258",
	};
	const char *why;

	if (writers > 64)
		writers = 64;
	if (share < 1)
		share = 1;
	shared = mmap(NULL, sizeof(*shared) * (writers + 1), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(shared, 0, sizeof(*shared) * (writers + 1));
	for (w = 0; w < sizeof(setup) / sizeof(setup[0]); w++)
		run_cmd(ctl, setup[w]);
	fflush(stdout);
	for (w = 0; w < writers; w++) {
		pids[w] = fork();
		if (pids[w] == 0)
			writer(w, share, &shared[w]);
		if (pids[w] < 0) {
			printf("# fuzz: fork: %s\n", strerror(errno));
			violations[V_CONC_WRITERS]++;
			writers = w;
			break;
		}
	}
	/* Read check while they write: it must be ok at every read. */
	alive = writers;
	while (alive) {
		int st;
		pid_t p;

		read_file(&s->f[F_LEGACY], F_LEGACY);
		read_file(&s->f[F_CHECK], F_CHECK);
		reads++;
		if (!(s->f[F_CHECK].total == 3 && !memcmp(s->f[F_CHECK].buf, "ok\n", 3)) &&
		    !memmem(s->f[F_LEGACY].buf, s->f[F_LEGACY].len, " on\n", 4)) {
			bad_reads++;
			if (violations[V_CONC_READS]++ < SHOW_VIOLATIONS) {
				line_at(&s->f[F_CHECK], 0, esc, sizeof(esc));
				printf("# violation (%s): read %lu: check says '%s'\n", v_names[V_CONC_READS], reads, esc);
			}
		}
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			alive--;
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				violations[V_CONC_WRITERS]++;
				printf("# violation (%s): writer pid %d ended with status 0x%x\n",
				       v_names[V_CONC_WRITERS], (int)p, st);
			}
		}
		if (p < 0 && errno == ECHILD)
			break;
		usleep(20000);
	}
	for (w = 0; w < writers; w++) {
		unsigned i;

		shared[writers].commands += shared[w].commands;
		shared[writers].ok += shared[w].ok;
		shared[writers].failed += shared[w].failed;
		shared[writers].bad_returns += shared[w].bad_returns;
		for (i = 0; i <= NERRNO; i++)
			shared[writers].err[i] += shared[w].err[i];
	}
	if (shared[writers].bad_returns) {
		violations[V_CONC_WRITERS]++;
		printf("# violation (%s): %lu writes returned neither their length nor -1\n",
		       v_names[V_CONC_WRITERS], shared[writers].bad_returns);
	}
	printf("# fuzz: concurrent writers=%u commands=%lu ok=%lu failed=%lu check_reads=%lu (not ok: %lu) %.1f s\n",
	       writers, shared[writers].commands, shared[writers].ok, shared[writers].failed,
	       reads, bad_reads, now() - t0);
	print_errnos("concurrent ", &shared[writers]);
	*total = shared[writers];

	/* Afterwards: check, then the module still answers. */
	read_snap(s);
	if (!s->check_ok && !s->legacy_on) {
		violations[V_CONC_CHECK]++;
		line_at(&s->f[F_CHECK], 0, esc, sizeof(esc));
		printf("# violation (%s): check says '%s'\n", v_names[V_CONC_CHECK], esc);
	} else if (s->legacy_on) {
		printf("# fuzz: a legacy switch is on after the concurrent phase: check not asserted\n");
	}
	{
		/* `quota enable` in the mode the instance is in (a no-op). */
		const struct file_snap *st = &s->f[F_STATUS];
		int simple = st->len >= 11 && !memcmp(st->buf, "mode simple", 11);
		const char *const probes[] = { "sync", simple ? "quota enable simple" : "quota enable",
					       "commit" };

		for (w = 0; w < 3; w++) {
			ssize_t ret = run_cmd(ctl, probes[w]);
			int err = errno;

			why = result_disagrees(ret, err);
			if (ret != (ssize_t)strlen(probes[w]) || *why) {
				violations[V_ANSWERS]++;
				escape(result_buf, strlen(result_buf), esc, sizeof(esc), 200);
				printf("# violation (%s): '%s' returned %zd (%s), result '%s'\n",
				       v_names[V_ANSWERS], probes[w], ret, ret < 0 ? strerror(err) : "ok", esc);
			}
		}
		read_snap(s);
		if (!s->check_ok && !s->legacy_on) {
			violations[V_ANSWERS]++;
			line_at(&s->f[F_CHECK], 0, esc, sizeof(esc));
			printf("# violation (%s): check after sync says '%s'\n", v_names[V_ANSWERS], esc);
		}
	}
	munmap(shared, sizeof(*shared) * (writers + 1));
}

static int open_files(void)
{
	int i;

	for (i = 0; i < NFILES; i++) {
		file_fds[i] = open_in_dir(file_names[i], O_RDONLY);
		if (file_fds[i] < 0)
			return -1;
	}
	result_fd = open_in_dir("result", O_RDONLY);
	return result_fd < 0 ? -1 : 0;
}

static void close_files(void)
{
	int i;

	for (i = 0; i < NFILES; i++)
		close(file_fds[i]);
	close(result_fd);
}

static int replay(const char *path)
{
	FILE *f = fopen(path, "r");
	static char line[CMD_CAP], bytes[CMD_CAP];
	int ctl = open_in_dir("control", O_WRONLY), n = 0;
	char tmp[32];

	if (!f || ctl < 0 || open_files()) {
		fprintf(stderr, "replay: cannot open %s or the module's files\n", path);
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t l = strlen(line), len;
		ssize_t ret;
		int err;

		if (l && line[l - 1] == '\n')
			line[--l] = 0;
		len = unescape(line, bytes);
		ret = write(ctl, bytes, len);
		err = errno;
		read_result();
		printf("%d: %s -> %s: %s", ++n, line, ret < 0 ? errno_str(err, tmp, sizeof(tmp)) : "ok", result_buf);
		if (getenv("QGROUP_RS_FUZZ_VERBOSE")) {
			struct snap *s = &snaps[0];
			int f;

			read_snap(s);
			for (f = 0; f < NFILES; f++)
				if (f != F_LEGACY)
					printf("%.*s", (int)s->f[f].len, s->f[f].buf);
		}
	}
	{
		struct snap *s = &snaps[0];

		read_snap(s);
		printf("check: %.*s", (int)s->f[F_CHECK].len, s->f[F_CHECK].buf);
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long ncmds;
	unsigned writers = 4;
	struct counts seq, conc;
	int ctl, i, ok_all;

	if (getenv("QGROUP_RS_DIR"))
		dir = getenv("QGROUP_RS_DIR");
	alloc_snap(&snaps[0]);
	alloc_snap(&snaps[1]);
	if (argc == 3 && !strcmp(argv[1], "--replay"))
		return replay(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "--print")) {
		struct gen g = { .r = { strtoul(argv[2], NULL, 0) * 0x2545f4914f6cdd1dULL + 1 }, .quota_on = 1 };
		unsigned long n = strtoul(argv[3], NULL, 0), k;

		for (k = 0; k < n; k++) {
			size_t len = generate(&g, cmd);

			escape(cmd, len, esc, sizeof(esc), 200);
			printf("%s\n", esc);
		}
		return 0;
	}
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s SEED NCMDS [WRITERS]\n       %s --print SEED NCMDS\n       %s --replay FILE\n",
			argv[0], argv[0], argv[0]);
		return 2;
	}
	seed = strtoul(argv[1], NULL, 0);
	ncmds = strtoul(argv[2], NULL, 0);
	if (argc == 4)
		writers = strtoul(argv[3], NULL, 0);
	history = calloc(REPRO_CAP, sizeof(*history));
	memset(&seq, 0, sizeof(seq));
	memset(&conc, 0, sizeof(conc));

	printf("KTAP version 1\n1..%d\n", NV);
	fflush(stdout);
	ctl = open_in_dir("control", O_WRONLY);
	if (ctl < 0 || open_files()) {
		for (i = 0; i < NV; i++)
			printf("not ok %d %s\n", i + 1, v_names[i]);
		return 0;
	}
	sequential(ctl, ncmds, &seq);
	if (writers)
		concurrent(ctl, ncmds, writers, &conc);
	else
		printf("# fuzz: no concurrent phase (WRITERS=0)\n");
	close_files();
	close(ctl);
	ok_all = 1;
	for (i = 0; i < NV; i++) {
		printf("%s %d %s\n", violations[i] ? "not ok" : "ok", i + 1, v_names[i]);
		if (violations[i])
			ok_all = 0;
	}
	printf("# fuzz: total commands=%lu (sequential %lu, concurrent %lu), violations:", seq.commands + conc.commands,
	       seq.commands, conc.commands);
	for (i = 0; i < NV; i++)
		printf(" %lu", violations[i]);
	printf("%s\n", ok_all ? " (none)" : "");
	return 0;
}
