//go:build unix

package daemon

import "syscall"

// openFilesLimit is the soft RLIMIT_NOFILE (Go raises it to the hard
// limit at start), 0 when unknown.
func openFilesLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
