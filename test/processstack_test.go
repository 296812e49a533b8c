package test

import (
	"fmt"
	"net/http"
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
	s := &ProcessStack{RelayPort: FreePort(t), MetricsPort: FreePort(t)}
	s.PKI, s.Master = newMaster(t)
	s.Proc = StartProcess(t, WriteReplinkConfig(t, s.PKI, s.Master.Port, s.RelayPort, s.MetricsPort, t.TempDir()), filepath.Join(t.TempDir(), "replink.log"))
	s.Slave = StartServer(t, "slave", ServerOptions{ServerID: 3})
	s.Master.Exec("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")
	changeMaster(t, s.Slave, s.PKI, s.RelayPort, "slave1", "mariadb-bin.000001", "")
	s.Slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, s.Master, s.Slave, 30*time.Second)
	return s
}

// newMaster makes a PKI and starts a TLS master (server id 1) with the
// replication accounts; extra lines go to its [mariadbd] group.
func newMaster(t *testing.T, extra ...string) (*PKI, *Server) {
	t.Helper()
	p := NewPKI(t)
	m := StartSSLServer(t, "master", p, 1, extra...)
	m.SetupReplUsers()
	return p, m
}

// waitReady waits until replink's /readyz on metricsPort answers 200.
func waitReady(t *testing.T, metricsPort int) {
	t.Helper()
	waitUntil(t, 20*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", metricsPort))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
