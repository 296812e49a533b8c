package binlog

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// UUIDName holds the data-dir's server_uuid, made once.
const UUIDName = "replink.uuid"

// loadUUID reads the data-dir's server_uuid, making one the first time
// (written atomically), so a replink answers @@server_uuid the same across
// restarts and differently from any other replink.
func loadUUID(dir string) (string, error) {
	name := filepath.Join(dir, UUIDName)
	b, err := os.ReadFile(name)
	if err == nil {
		u := strings.TrimSpace(string(b))
		if !uuidRE.MatchString(u) {
			return "", fmt.Errorf("relay log %s: not a UUID: %q", name, u)
		}
		return u, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("relay log %s: %w", name, err)
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	r[6] = r[6]&0x0f | 0x40 // version 4
	r[8] = r[8]&0x3f | 0x80 // RFC 4122 variant
	u := fmt.Sprintf("%x-%x-%x-%x-%x", r[0:4], r[4:6], r[6:8], r[8:10], r[10:16])
	if err := WriteFileAtomic(name, []byte(u+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("relay log %s: %w", name, err)
	}
	return u, nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ServerUUID is this data-dir's server_uuid.
func (l *Log) ServerUUID() string { return l.uuid }

// LockName is the data-dir's lock file: it holds the pid and host of the
// replink that has the data-dir open (flock(2), released with the
// process).
const LockName = "replink.lock"

// CheckName checks a binlog file name, from the master, the index or a
// slave: a
// plain file name of letters, digits, '.', '_' and '-', of at most 255
// bytes, not "." or "..", and not a name replink keeps for its own files
// in data-dir (reservedName).
func CheckName(name string) error {
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
	if strings.HasSuffix(name, ".tmp") || strings.Contains(name, ".corrupt-") || strings.HasSuffix(name, SideSuffix) {
		return true
	}
	base, _, numbered := SplitFile(name)
	return strings.HasPrefix(name, "replink.") && !(numbered && base == "replink")
}
