package history

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseMapped asks the kernel to reclaim this process's resident pages of
// the read model's memory-mapped file. bbolt reads through a shared mapping
// of the whole file, so every page a query or an index update touched stays
// counted in the process's RSS, growing with the history (measured: 897 MB
// of file-backed RSS after 1M runs, beside 192 MB of heap). MADV_PAGEOUT is
// non-destructive: a page needed again is read back from the file (the
// kernel's page cache, usually), and a range that is no longer the file's
// mapping by the time of the call loses nothing either.
func releaseMapped(path string) (released uint64, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != abs {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return released, errno
		}
		released += end - start
	}
	return released, sc.Err()
}
