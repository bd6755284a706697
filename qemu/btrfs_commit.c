// SPDX-License-Identifier: GPL-2.0
/*
 * The real-btrfs helper of `make compare`, built static on the host
 * (gcc -static -O2) so that it needs no library in the guest.
 *
 * btrfs_commit MOUNTPOINT
 *	Commit the running btrfs transaction and wait for it, without
 *	starting writeback of dirty data (unlike sync(2) / syncfs(2)):
 *	BTRFS_IOC_START_SYNC (btrfs_ioctl_start_sync: attach to the running
 *	transaction, commit it asynchronously, return its transid), then
 *	BTRFS_IOC_WAIT_SYNC on that transid. The commit writes back no
 *	delalloc unless the filesystem is mounted with flushoncommit. This is
 *	the real counterpart of the module's `commit`. Prints "ok transid=N".
 *
 * btrfs_commit --tree-bytes MOUNTPOINT ID...
 *	For each subvolume ID, print "ID BYTES": the bytes_used of its root
 *	item in the root tree (BTRFS_IOC_TREE_SEARCH), i.e. nodesize times
 *	the number of tree blocks of that subvolume as of the last commit
 *	(ctree.c root_add_used_bytes / root_sub_used_bytes). The comparison
 *	uses it to tell tree blocks beyond the root from data in rfer / excl.
 *
 * On failure: "error ERRNO-NAME what: strerror", exit 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>

static int fail(const char *what)
{
	int e = errno;
	const char *name = e == EDQUOT ? "EDQUOT" : e == ENOSPC ? "ENOSPC" :
			   e == ENOENT ? "ENOENT" : e == EINVAL ? "EINVAL" :
			   e == ENOTTY ? "ENOTTY" : e == EROFS ? "EROFS" : "EIO";
	printf("error %s %s: %s\n", name, what, strerror(e));
	return 1;
}

static int tree_bytes(int fd, uint64_t id)
{
	struct btrfs_ioctl_search_args args;
	struct btrfs_ioctl_search_header *sh;
	struct btrfs_root_item *item;

	memset(&args, 0, sizeof(args));
	args.key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
	args.key.min_objectid = args.key.max_objectid = id;
	args.key.min_type = args.key.max_type = BTRFS_ROOT_ITEM_KEY;
	args.key.min_offset = 0;
	args.key.max_offset = (uint64_t)-1;
	args.key.max_transid = (uint64_t)-1;
	args.key.nr_items = 1;
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		return fail("BTRFS_IOC_TREE_SEARCH");
	if (args.key.nr_items < 1) {
		errno = ENOENT;
		return fail("root item");
	}
	sh = (struct btrfs_ioctl_search_header *)args.buf;
	item = (struct btrfs_root_item *)(sh + 1);
	if (sh->len < offsetof(struct btrfs_root_item, bytes_used) + 8) {
		errno = EINVAL;
		return fail("root item length");
	}
	printf("%llu %llu\n", (unsigned long long)id,
	       (unsigned long long)le64toh(item->bytes_used));
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t transid = 0;
	int fd, i, ret = 0;
	int tree = argc >= 3 && !strcmp(argv[1], "--tree-bytes");

	if (argc != 2 && !tree) {
		fprintf(stderr, "usage: %s MOUNTPOINT | --tree-bytes MOUNTPOINT ID...\n", argv[0]);
		return 2;
	}
	fd = open(argv[tree ? 2 : 1], O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fail("open");
	if (tree) {
		for (i = 3; i < argc; i++)
			ret |= tree_bytes(fd, strtoull(argv[i], NULL, 10));
		return ret;
	}
	if (ioctl(fd, BTRFS_IOC_START_SYNC, &transid) < 0)
		return fail("BTRFS_IOC_START_SYNC");
	if (ioctl(fd, BTRFS_IOC_WAIT_SYNC, &transid) < 0)
		return fail("BTRFS_IOC_WAIT_SYNC");
	printf("ok transid=%llu\n", (unsigned long long)transid);
	close(fd);
	return 0;
}
