package replica

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// A master keeps one binlog dump per server-id. A replica that asks for a
// dump under an id another replica streams with makes the master end the
// older dump (MariaDB: ERROR 4052 ER_SLAVE_SAME_ID; MySQL: ERROR 1236 "A
// slave with the same server_uuid/server_id as this slave has
// connected"); the loser reconnects and ends the winner's in turn, and
// both flap. replink looks before it registers: an id that SHOW SLAVE
// HOSTS lists under another replica's name is left to that replica.

// errSameServerID is MariaDB's ER_SLAVE_SAME_ID.
const errSameServerID = 4052

// ReasonDuplicateServerID is the reconnect reason of both cases: replink
// found its id held by another replica, or the master ended its dump for
// another one's.
const ReasonDuplicateServerID = "duplicate_server_id"

// Registration is how replink is listed in the master's SHOW SLAVE HOSTS:
// this machine's host name and the relay port.
type Registration struct {
	Host string
	Port uint16
}

func (r Registration) String() string {
	return net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port)))
}

// Registration is the name replink registers with on the master.
func (c Config) Registration() Registration {
	return Registration{Host: ReportHost(), Port: c.ReportPort}
}

// SameIDReplica returns the replica the master lists (SHOW SLAVE HOSTS)
// with server-id id under another name than self, "" when there is none.
// The list needs REPLICATION MASTER ADMIN on MariaDB 10.5.2 and later
// (REPLICATION SLAVE before, and on MySQL); without it the error says so.
// An entry under replink's own name is its own earlier dump, which the
// master ends when the new one starts.
func SameIDReplica(c *client.Conn, id uint32, self Registration) (string, error) {
	res, err := c.Execute("SHOW SLAVE HOSTS")
	if err != nil {
		return "", fmt.Errorf("SHOW SLAVE HOSTS (on MariaDB it needs REPLICATION MASTER ADMIN): %w", err)
	}
	for i := 0; i < res.RowNumber(); i++ {
		sid, _ := res.GetUintByName(i, "Server_id")
		host, _ := res.GetStringByName(i, "Host")
		port, _ := res.GetUintByName(i, "Port")
		other := Registration{Host: host, Port: uint16(port)}
		if uint32(sid) == id && other != self {
			return other.String(), nil
		}
	}
	return "", nil
}

// duplicateServerIDError: the server-id is another replica's on the
// master, seen before registering (holder known) or told by the master.
type duplicateServerIDError struct {
	id     uint32
	holder string // "" when the master told
	err    error  // the master's error, when it told
}

func (e *duplicateServerIDError) Error() string {
	if e.holder != "" {
		return fmt.Sprintf("server-id %d is held on the master by the replica %s (SHOW SLAVE HOSTS); not asking for a dump, which would end that replica's", e.id, e.holder)
	}
	return fmt.Sprintf("the master ended the dump: another replica registered with server-id %d: %v", e.id, e.err)
}

func (e *duplicateServerIDError) Unwrap() error { return e.err }

// sameIDEnded reports whether err is the master ending the dump for
// another replica with the same server-id.
func sameIDEnded(err error) bool {
	var me *mysql.MyError
	if errors.As(err, &me) && me.Code == errSameServerID {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "same server_uuid/server_id")
}

// duplicateHint is the fix for a duplicate server-id.
func duplicateHint(id uint32) string {
	return fmt.Sprintf("another replica streams from the master with server-id %d, and the master keeps one dump per id: give every replink and slave its own [master] server-id (SHOW SLAVE HOSTS on the master lists who holds it); replink retries and streams once the id is free", id)
}
