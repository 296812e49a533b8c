package test

import (
	"path/filepath"
	"testing"
	"time"
)

// ProcessStack is the replink binary between a real master and a real
// slave that has caught up through it.
type ProcessStack struct {
	PKI                    *PKI
	Master, Slave          *Server
	Proc                   *Process
	RelayPort, MetricsPort int
}

// StartProcessStack starts a TLS master, the replink binary in front of
// it, and a slave (X509 account) replicating through replink; a table
// d.t with one row has reached the slave when it returns.
func StartProcessStack(t *testing.T) *ProcessStack {
	t.Helper()
	s := &ProcessStack{PKI: NewPKI(t), RelayPort: FreePort(t), MetricsPort: FreePort(t)}
	s.Master = StartSSLServer(t, "master", s.PKI, 1)
	s.Master.SetupReplUsers()
	s.Proc = StartProcess(t, WriteReplinkConfig(t, s.PKI, s.Master.Port, s.RelayPort, s.MetricsPort, t.TempDir()), filepath.Join(t.TempDir(), "replink.log"))
	s.Slave = StartServer(t, "slave", ServerOptions{ServerID: 3})
	s.Master.Exec("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")
	changeMaster(t, s.Slave, s.PKI, s.RelayPort, "slave1", "mariadb-bin.000001", "")
	s.Slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, s.Master, s.Slave, 30*time.Second)
	return s
}
