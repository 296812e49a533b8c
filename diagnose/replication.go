package diagnose

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/replink/replink/replica"
)

// checkReplication checks the master is fit to replicate from: the
// privilege, log_bin, binlog_format, binlog_checksum, GTID and server_id.
func checkReplication(r *Report, c *client.Conn, cfg replica.Config) {
	res, err := c.Execute("SHOW GRANTS")
	if err != nil {
		r.add(Step{Step: "replication_privilege", Detail: "reading the grants (SHOW GRANTS) failed: " + errText(err), Reason: "other"})
	} else {
		var grants []string
		for i := 0; i < res.RowNumber(); i++ {
			g, _ := res.GetString(i, 0)
			grants = append(grants, g)
		}
		if hasReplicationGrant(grants) {
			r.add(Step{Step: "replication_privilege", OK: true, Detail: "REPLICATION SLAVE granted"})
		} else {
			r.add(Step{Step: "replication_privilege", Detail: fmt.Sprintf("%s lacks REPLICATION SLAVE", cfg.User), Reason: "access_denied",
				Hint: fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'%%'", cfg.User)})
		}
	}
	res, err = c.Execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format','binlog_checksum','server_id','gtid_mode','gtid_domain_id','gtid_binlog_pos','version','encrypt_binlog','binlog_encryption')")
	if err != nil {
		r.add(Step{Step: "binlog_settings", Detail: "reading the binlog settings (SHOW GLOBAL VARIABLES) failed: " + errText(err), Reason: "other"})
		return
	}
	v := map[string]string{}
	for i := 0; i < res.RowNumber(); i++ {
		k, _ := res.GetString(i, 0)
		val, _ := res.GetString(i, 1)
		v[strings.ToLower(k)] = val
	}
	if v["log_bin"] != "ON" && v["log_bin"] != "1" {
		r.add(Step{Step: "log_bin", Detail: "binary logging is off", Reason: "other", Hint: "start the master with log_bin=<basename> (and a server_id)"})
	} else {
		r.add(Step{Step: "log_bin", OK: true, Detail: "ON"})
	}
	switch f := v["binlog_format"]; f {
	case "ROW":
		r.add(Step{Step: "binlog_format", OK: true, Detail: f})
	default:
		r.add(Step{Step: "binlog_format", OK: true, Detail: f + " (works; ROW is the safe choice for replicas)"})
	}
	switch cs := v["binlog_checksum"]; cs {
	case "CRC32", "NONE", "":
		r.add(Step{Step: "binlog_checksum", OK: true, Detail: cs})
	default:
		r.add(Step{Step: "binlog_checksum", Detail: cs + " is not understood", Reason: "other", Hint: "SET GLOBAL binlog_checksum=CRC32"})
	}
	gtid := "MariaDB GTID, gtid_binlog_pos " + v["gtid_binlog_pos"]
	if _, ok := v["gtid_mode"]; ok {
		gtid = "MySQL gtid_mode=" + v["gtid_mode"]
	}
	r.add(Step{Step: "gtid", OK: true, Detail: gtid})
	checkAtRest(r, v, cfg)
	id, _ := strconv.ParseUint(v["server_id"], 10, 32)
	if cfg.ServerID == 0 {
		r.add(Step{Step: "server_id", OK: true, Warning: true, Detail: fmt.Sprintf("master %d; replink's server-id not given, so not checked against the master's replicas (give -c FILE or --server-id)", id)})
		return
	}
	other, err := replica.SameIDReplica(c, cfg.ServerID, cfg.Registration())
	switch {
	case uint32(id) == cfg.ServerID:
		r.add(Step{Step: "server_id", Detail: fmt.Sprintf("master server_id %d equals replink's server-id", id), Reason: "other",
			Hint: "give replink a server-id no server in the topology uses ([master] server-id)"})
	case other != "":
		// The master keeps one dump per id: replink would wait for the
		// id to be free (reason duplicate_server_id).
		r.add(Step{Step: "server_id", Detail: fmt.Sprintf("the replica %s is registered on the master with replink's server-id %d", other, cfg.ServerID), Reason: "other",
			Hint: "give every replink and slave its own server-id ([master] server-id); SHOW SLAVE HOSTS on the master lists them"})
	case err != nil:
		r.add(Step{Step: "server_id", OK: true, Warning: true, Detail: fmt.Sprintf("master %d, replink %d; the master's replicas could not be listed, so another one with this id is not ruled out: %v", id, cfg.ServerID, err),
			Hint: "GRANT REPLICATION MASTER ADMIN ON *.* to the replication user lets replink and diagnose check"})
	default:
		r.add(Step{Step: "server_id", OK: true, Detail: fmt.Sprintf("master %d, replink %d; no other replica registered with it", id, cfg.ServerID)})
	}
}

// checkAtRest warns when the master encrypts its binlog files (MariaDB's
// encrypt_binlog, MySQL's binlog_encryption) and replink's relay log, which
// holds the same rows, would not.
func checkAtRest(r *Report, v map[string]string, cfg replica.Config) {
	encrypts := replica.MasterEncrypts(v)
	switch {
	case encrypts && !cfg.RelayEncrypted:
		r.add(Step{Step: "binlog_encryption", OK: true, Warning: true,
			Detail: "the master encrypts its binlog files, and replink's relay log would hold the same rows in plaintext: the relay host would hold what the master protects",
			Hint:   "set [relay] key-file (the master's file_key_management key file works as it is) to encrypt the relay log at rest"})
	case encrypts:
		r.add(Step{Step: "binlog_encryption", OK: true, Detail: "the master encrypts its binlog files; so does the relay log"})
	}
}
