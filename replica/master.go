package replica

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// Finding the master after a failover. replink never promotes, fences or
// writes: a failover manager does that. Among host and the candidates,
// the master is the one writable server (@@read_only = 0), and replink
// follows it only when its binlog holds every transaction replink has
// already stored (and so may have served).

// ServerState is what a probe of a server (the master or a candidate)
// found.
type ServerState struct {
	Addr     string
	Version  string
	ServerID uint32
	ReadOnly bool
	// BinlogState is its @@gtid_binlog_state: every GTID its binlog holds
	// the last of, per domain and server.
	BinlogState *binlog.BinlogState
	// LogSlaveUpdates: what it replicated is in its binlog too, as a
	// candidate's must be.
	LogSlaveUpdates bool
	LogBin          bool
	Err             error // unreachable, refused, or the queries failed
}

// Writable reports a server that answered and takes writes.
func (s ServerState) Writable() bool { return s.Err == nil && !s.ReadOnly }

// Probe logs in to ep as the master link does (same TLS options, the
// certificate verified against ep.Host) and reads what choosing a master
// needs. It writes nothing.
func Probe(ctx context.Context, ep Endpoint, m *tlsutil.Metrics) ServerState {
	st := ServerState{Addr: ep.Addr()}
	c, a, err := ep.Connect(ctx, "master", m)
	if err != nil {
		st.Err = err
		return st
	}
	defer c.Close()
	if a != nil && a.Greeting != nil {
		st.Version = a.Greeting.Version
	}
	res, err := c.Execute("SELECT @@global.read_only, @@global.server_id, @@global.gtid_binlog_state, @@global.log_slave_updates, @@global.log_bin")
	if err != nil {
		st.Err = fmt.Errorf("%s: read_only, server_id, gtid_binlog_state: %w", st.Addr, err)
		return st
	}
	if len(res.Values) != 1 || len(res.Values[0]) != 5 {
		st.Err = fmt.Errorf("%s: read_only, server_id, gtid_binlog_state: %d rows", st.Addr, len(res.Values))
		return st
	}
	row := make([]string, 5)
	for i := range row {
		row[i], _ = res.GetString(0, i) // NULL (an empty state) is ""
	}
	st.ReadOnly = row[0] != "0" && !strings.EqualFold(row[0], "OFF")
	id, err := strconv.ParseUint(row[1], 10, 32)
	if err != nil {
		st.Err = fmt.Errorf("%s: server_id %q: %w", st.Addr, row[1], err)
		return st
	}
	st.ServerID = uint32(id)
	if st.BinlogState, err = binlog.ParseBinlogState(row[2]); err != nil {
		st.Err = fmt.Errorf("%s: gtid_binlog_state: %w", st.Addr, err)
		return st
	}
	st.LogSlaveUpdates = row[3] == "1" || strings.EqualFold(row[3], "ON")
	st.LogBin = row[4] == "1" || strings.EqualFold(row[4], "ON")
	return st
}

// Choice is what to do about the master, with the word that is its
// result label (replink_master_switches_total) and log reason.
type Choice struct {
	// Result: "ok" (Master is the writable server and holds all replink
	// has), "diverged" (the writable server lacks Missing), "ambiguous"
	// (Writable lists more than one) or "none" (no server is writable:
	// wait; a failover manager is still at work).
	Result string
	Master ServerState
	// Missing are the GTIDs replink has that Master's binlog lacks (the
	// last of each domain and server; every one after its own lacks too).
	Missing []binlog.MariaGTID
	// Writable are the writable servers' addresses when ambiguous.
	Writable []string
}

func (c Choice) String() string {
	switch c.Result {
	case "ok":
		return fmt.Sprintf("master %s (server_id %d)", c.Master.Addr, c.Master.ServerID)
	case "diverged":
		return fmt.Sprintf("%s is writable but its binlog lacks transactions replink has: %s", c.Master.Addr, gtids(c.Missing))
	case "ambiguous":
		return fmt.Sprintf("more than one writable server: %s", strings.Join(c.Writable, ", "))
	}
	return "no writable server"
}

func gtids(list []binlog.MariaGTID) string {
	parts := make([]string, len(list))
	for i, g := range list {
		parts[i] = g.String()
	}
	return strings.Join(parts, ",")
}

// Choose picks the master among the probed servers, given the binlog
// state of what replink has stored: the one writable server, if its
// binlog holds every GTID replink has. Two writable servers are never
// chosen between (a split brain is the failover manager's to settle),
// and a server that lacks what replink may already have served is never
// followed: it would contradict the stream.
func Choose(have *binlog.BinlogState, servers []ServerState) Choice {
	var writable []ServerState
	for _, s := range servers {
		if s.Writable() {
			writable = append(writable, s)
		}
	}
	switch len(writable) {
	case 0:
		return Choice{Result: "none"}
	case 1:
	default:
		c := Choice{Result: "ambiguous"}
		for _, s := range writable {
			c.Writable = append(c.Writable, s.Addr)
		}
		return c
	}
	m := writable[0]
	if missing := have.Lacks(m.BinlogState); len(missing) > 0 {
		return Choice{Result: "diverged", Master: m, Missing: missing}
	}
	return Choice{Result: "ok", Master: m}
}
