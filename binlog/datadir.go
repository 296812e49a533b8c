package binlog

import (
	"fmt"
	"strings"
)

// LockName is the data-dir's lock file: it holds the pid and host of the
// replink that has the data-dir open (flock(2), released with the
// process).
const LockName = "replink.lock"

// checkName checks a binlog file name, from the master or the index: a
// plain file name of letters, digits, '.', '_' and '-', of at most 255
// bytes, not "." or "..", and not a name replink keeps for its own files
// in data-dir (reservedName).
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return fmt.Errorf("bad binlog file name %q", name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("bad binlog file name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	if reservedName(name) {
		return fmt.Errorf("binlog file name %q is one replink keeps for its own files", name)
	}
	return nil
}

// reservedName reports the names of replink's own files in data-dir: the
// index, the lock and any other replink.<word> (a master's "replink.000001",
// base name and sequence number, is not one), a file being replaced
// (*.tmp), a cut kept by recovery (*.corrupt-*).
func reservedName(name string) bool {
	if strings.HasSuffix(name, ".tmp") || strings.Contains(name, ".corrupt-") {
		return true
	}
	base, _, numbered := SplitFile(name)
	return strings.HasPrefix(name, "replink.") && !(numbered && base == "replink")
}
