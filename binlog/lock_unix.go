//go:build unix

package binlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes the data-dir's lock: flock(2), exclusive and without
// waiting, on LockName, which then holds this process's pid and host. The
// lock belongs to the open file, so it goes with the process however that
// ends, and a second open of the data-dir conflicts even in one process.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("relay log %s: lock: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		holder, _ := io.ReadAll(io.LimitReader(f, 512))
		f.Close()
		who := string(bytes.TrimSpace(holder))
		if i := bytes.IndexByte(holder, '\n'); i >= 0 {
			who = string(bytes.TrimSpace(holder[:i]))
		}
		if who == "" {
			who = "which has not written its pid yet"
		}
		return nil, fmt.Errorf("relay log %s: data-dir is in use by another replink (%s)", dir, who)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("relay log %s: lock %s: %w", dir, path, err)
	}
	host, _ := os.Hostname()
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("relay log %s: lock %s: %w", dir, path, err)
	}
	if _, err := f.WriteAt([]byte(fmt.Sprintf("pid %d on host %s\n", os.Getpid(), host)), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("relay log %s: lock %s: %w", dir, path, err)
	}
	return f, nil
}

// unlockDataDir releases the lock (closing the file does), leaving the
// lock file empty.
func unlockDataDir(f *os.File) {
	_ = f.Truncate(0)
	f.Close()
}
