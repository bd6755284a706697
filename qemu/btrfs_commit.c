// SPDX-License-Identifier: GPL-2.0
/*
 * btrfs_commit MOUNTPOINT: commit the running btrfs transaction and wait for
 * it, without starting writeback of dirty data (unlike sync(2) / syncfs(2)):
 * BTRFS_IOC_START_SYNC (btrfs_ioctl_start_sync: attach to the running
 * transaction, commit it asynchronously, return its transid), then
 * BTRFS_IOC_WAIT_SYNC on that transid. The commit itself writes back no
 * delalloc unless the filesystem is mounted with flushoncommit.
 * This is the real counterpart of the module's `commit` for `make compare`.
 * Prints "ok transid=N" or "error ERRNO-NAME strerror"; exit 0 / 1.
 * Built static on the host (gcc -static -O2) so that it needs no library in
 * the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BTRFS_IOCTL_MAGIC 0x94
#define BTRFS_IOC_WAIT_SYNC _IOW(BTRFS_IOCTL_MAGIC, 22, uint64_t)
#define BTRFS_IOC_START_SYNC _IOR(BTRFS_IOCTL_MAGIC, 24, uint64_t)

static int fail(const char *what)
{
	int e = errno;
	const char *name = e == EDQUOT ? "EDQUOT" : e == ENOSPC ? "ENOSPC" :
			   e == ENOENT ? "ENOENT" : e == EINVAL ? "EINVAL" :
			   e == ENOTTY ? "ENOTTY" : e == EROFS ? "EROFS" : "EIO";
	printf("error %s %s: %s\n", name, what, strerror(e));
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t transid = 0;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fail("open");
	if (ioctl(fd, BTRFS_IOC_START_SYNC, &transid) < 0)
		return fail("BTRFS_IOC_START_SYNC");
	if (ioctl(fd, BTRFS_IOC_WAIT_SYNC, &transid) < 0)
		return fail("BTRFS_IOC_WAIT_SYNC");
	printf("ok transid=%llu\n", (unsigned long long)transid);
	close(fd);
	return 0;
}
