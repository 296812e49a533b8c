//go:build !unix

package daemon

// openFilesLimit is unknown here.
func openFilesLimit() uint64 { return 0 }
