package relay

import (
	"fmt"

	"github.com/replink/replink/binlog"
)

// resolve finds the relay file a slave means by a master's file name.
// After a failover the relay log may hold two masters' files of one name
// (both with the same log_bin base name); then the slave's remembered
// record says which it was served last. A slave replink does not know
// asking for such a name is refused rather than served another master's
// file at the same offset.
func (ss *session) resolve(name string, serverID uint32) (string, error) {
	paths := ss.s.rlog.Resolve(name)
	switch len(paths) {
	case 0:
		return name, nil // not (yet) in the relay log: the caller decides
	case 1:
		return paths[0], nil
	}
	if serverID == 0 {
		serverID = ss.serverID
	}
	for _, r := range ss.s.memory.list() {
		if r.User == ss.user && r.ServerID == serverID && binlog.MasterName(r.File) == name {
			return r.File, nil
		}
	}
	return "", errBinlog(fmt.Sprintf("'%s' names a file of two masters' binlogs in replink's relay log (before and after a master failover), "+
		"and replink has not served this slave from either; use MASTER_USE_GTID=slave_pos, or the current master's coordinates", name))
}
