package relay

import (
	"fmt"

	"github.com/replink/replink/binlog"
)

// checkGTIDStart answers as a master does when a GTID slave asks for a
// position its binlog does not hold: a GTID of a server that logged in
// that domain but never reached that sequence number is refused (ERR
// 1236), with the master's words; "diverged" when the domain has gone
// past it, so the slave has transactions the master never had. A domain
// the binlog has nothing of is fine (another master's domain).
func (ss *session) checkGTIDStart(state binlog.MariaState) error {
	bs, _, err := ss.s.binlogState()
	if err != nil {
		return err
	}
	for _, g := range state {
		if bs.Has(g) {
			continue
		}
		last, ok := bs.Last(g.Domain)
		if !ok {
			continue
		}
		msg := fmt.Sprintf("Error: connecting slave requested to start from GTID %s, which is not in the master's binlog", g)
		if last.Seq >= g.Seq {
			msg += ". Since the master's binlog contains GTIDs with higher sequence numbers, it probably means that the slave has diverged due to executing extra erroneous transactions"
		}
		return errBinlog(msg)
	}
	return nil
}

// binlogState is the durable relay log's binlog state: the GTID_LIST of
// the newest file, and every GTID in it since; and the master's server
// id, which its FDE carries. The relay log keeps it as it grows.
func (s *Server) binlogState() (bs *binlog.BinlogState, masterID uint32, err error) {
	st, err := s.rlog.State()
	if err != nil {
		return nil, 0, err
	}
	return st.Maria, st.MasterID, nil
}

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
	from  []binlog.MariaGTID // the slave's position, as it gave it
	state binlog.MariaState  // the domains still being skipped
	groupSkip
}

// newGTIDFilter skips up to the slave's position. A domain whose GTID is
// the last one logged before the start file (its GTID_LIST says so) has
// nothing to skip, as on a master.
func newGTIDFilter(state binlog.MariaState, startList binlog.MariaState) *gtidFilter {
	f := &gtidFilter{from: state.Sorted(), state: binlog.MariaState{}}
	for d, g := range state {
		if startList[d] != g {
			f.state[d] = g
		}
	}
	return f
}

// pending reports whether some domain has not reached the slave's
// position yet.
func (f *gtidFilter) pending() bool { return f != nil && len(f.state) > 0 }

func (f *gtidFilter) skip(e binlog.Event) bool {
	return f.groupSkip.skip(e, func(g binlog.MariaGTID) bool {
		s, ok := f.state[g.Domain]
		skip := ok && g.Seq <= s.Seq
		if ok && !skip {
			delete(f.state, g.Domain)
		}
		return skip
	})
}

// groupSkip drops whole transaction groups: whether a group goes is
// decided at its GTID event, and the rest of the group follows.
type groupSkip struct {
	groups   binlog.GroupTracker
	skipping bool
}

// skip reports whether e is dropped; drop decides for each GTID.
func (k *groupSkip) skip(e binlog.Event, drop func(binlog.MariaGTID) bool) bool {
	switch {
	case e.Type() == binlog.TypeMariaGTID:
		g, _ := binlog.GTIDOf(e, k.groups.Checksum())
		k.skipping = drop(g)
		k.groups.Add(e)
		return k.skipping
	case k.skipping:
		if k.groups.Add(e) {
			k.skipping = false
		}
		return true
	}
	k.groups.Add(e)
	return false
}
