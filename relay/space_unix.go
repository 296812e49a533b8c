//go:build unix

package relay

import (
	"fmt"
	"syscall"
)

// diskSpace is the free (available to replink, not root's reserve) and
// total bytes of the file system that holds dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil
}
