package binlog

import (
	"io"
	"os"
)

// file is what the relay log does with the file it writes: *os.File in
// production; tests put in one that fails on demand (a failed fsync, a
// full disk). Readers for slaves open their files with os.Open directly.
type file interface {
	io.Reader
	io.Writer
	io.Seeker
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

// openFunc opens a relay file for writing, as os.OpenFile does.
type openFunc func(name string, flag int, perm os.FileMode) (file, error)

// openOS is the openFunc of the real file system.
func openOS(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}
