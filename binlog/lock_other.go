//go:build !unix

package binlog

import (
	"fmt"
	"os"
	"runtime"
)

// lockDataDir: a data-dir must be used by one replink at a time, which
// is only enforced (flock) on unix.
func lockDataDir(dir string) (*os.File, error) {
	return nil, fmt.Errorf("relay log %s: locking the data-dir is not supported on %s", dir, runtime.GOOS)
}

func unlockDataDir(*os.File) {}
