package diagnose

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// checkCandidates probes every [master] candidate as replink would after
// a failover: reached and verified as the master is (against its own
// name), logged in, allowed to replicate, and fit to be followed: binary
// logging on and log_slave_updates, so its binlog holds what it
// replicated from the master. A writable candidate beside a writable
// master is two masters, which replink never chooses between.
func checkCandidates(ctx context.Context, r *Report, cfg replica.Config, masterWritable bool) {
	m := tlsutil.NewMetrics(prometheus.NewRegistry()) // counted nowhere
	for _, cand := range cfg.Candidates {
		step := Step{Step: "candidate"}
		st := replica.Probe(ctx, cand, m)
		if st.Err != nil {
			step.Reason = tlsutil.Classify(st.Err)
			step.Detail = fmt.Sprintf("%s: %s", cand.Addr(), errText(st.Err))
			r.add(step)
			continue
		}
		role := "read-only"
		if !st.ReadOnly {
			role = "writable"
		}
		step.Detail = fmt.Sprintf("%s: %s %s, server_id %d, %s, gtid_binlog_state %s", cand.Addr(), st.Version, role, st.ServerID,
			onOff("log_slave_updates", st.LogSlaveUpdates), st.BinlogState)
		switch {
		case !grantsReplication(ctx, cand, m):
			step.Reason = tlsutil.ReasonAccessDenied
			step.Detail += fmt.Sprintf("; %s lacks REPLICATION SLAVE there", cand.User)
			step.Hint = fmt.Sprintf("on %s: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'%%'", cand.Addr(), cand.User)
		case !st.LogBin:
			step.Reason = "other"
			step.Hint = fmt.Sprintf("start %s with log_bin and log_slave_updates=ON: replink follows a new master by its binlog", cand.Addr())
		case !st.LogSlaveUpdates:
			step.Reason = "other"
			step.Hint = fmt.Sprintf("SET GLOBAL log_slave_updates=ON on %s (and in its my.cnf): without it its binlog lacks what it replicated, and replink cannot follow it once promoted", cand.Addr())
		case !st.ReadOnly && masterWritable:
			step.Reason = "other"
			step.Detail += "; the master is writable too"
			step.Hint = "two writable servers: replink follows neither after a failover (ambiguous); set the one that is not the master read_only=ON"
		default:
			step.OK = true
		}
		r.add(step)
	}
}

// grantsReplication reports whether ep's account may replicate there.
func grantsReplication(ctx context.Context, ep replica.Endpoint, m *tlsutil.Metrics) bool {
	c, _, err := ep.Connect(ctx, "master", m)
	if err != nil {
		return false
	}
	defer c.Close()
	res, err := c.Execute("SHOW GRANTS")
	if err != nil {
		return false
	}
	var grants []string
	for i := 0; i < res.RowNumber(); i++ {
		g, _ := res.GetString(i, 0)
		grants = append(grants, g)
	}
	return hasReplicationGrant(grants)
}

func hasReplicationGrant(grants []string) bool {
	all := strings.ToUpper(strings.Join(grants, "\n"))
	return strings.Contains(all, "REPLICATION SLAVE") || strings.Contains(all, "REPLICATION REPLICA") || strings.Contains(all, "ALL PRIVILEGES ON *.*")
}

func onOff(name string, on bool) string {
	if on {
		return name + " ON"
	}
	return name + " OFF"
}
