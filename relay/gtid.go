package relay

import (
	"fmt"

	"github.com/replink/replink/binlog"
)

// gtidStart finds where a MariaDB GTID slave starts: the last relay file
// whose starting state (its GTID_LIST) is not ahead of the slave's
// position in any domain. The dump then skips the groups the slave has.
func (ss *session) gtidStart(state binlog.MariaState) (string, error) {
	rl := ss.s.rlog
	files := rl.Files()
	start := ""
	for _, f := range files {
		list, err := rl.GTIDList(f)
		if err != nil {
			return "", err
		}
		if list == nil {
			continue // no GTID_LIST yet (a file just started)
		}
		ahead := false
		for d, g := range list {
			if s, ok := state[d]; !ok && g.Seq > 0 || ok && g.Seq > s.Seq {
				ahead = true
			}
		}
		if ahead {
			break
		}
		start = f
	}
	if start == "" {
		return "", errBinlog(fmt.Sprintf("Could not find GTID state requested by slave in any binlog files. Probably the slave state is too old and required binlog files have been purged. (slave position %s)", state))
	}
	return start, nil
}

// gtidFilter drops the event groups a GTID slave already has: those whose
// sequence number is not past the slave's position in their domain. Once a
// domain has sent a newer group, it is no longer filtered.
type gtidFilter struct {
	state    binlog.MariaState
	groups   binlog.GroupTracker
	skipping bool
}

func (f *gtidFilter) skip(e binlog.Event) bool {
	switch {
	case e.Type() == binlog.TypeMariaGTID:
		g, _ := binlog.GTIDOf(e, f.groups.Checksum())
		s, ok := f.state[g.Domain]
		f.skipping = ok && g.Seq <= s.Seq
		if ok && !f.skipping {
			delete(f.state, g.Domain)
		}
		f.groups.Add(e)
		return f.skipping
	case f.skipping:
		if f.groups.Add(e) {
			f.skipping = false
		}
		return true
	}
	f.groups.Add(e)
	return false
}
