package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/logging"
)

// goSlave is a go-mysql BinlogSyncer reading from replink, keeping the
// bytes of every event that belongs to a file, per file.
type goSlave struct {
	mu    sync.Mutex
	file  string
	files map[string]*bytes.Buffer
}

func (g *goSlave) HandleEvent(e *replication.BinlogEvent) error {
	ev, err := binlog.ParseEvent(e.RawData)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ev.Type() == binlog.TypeRotate {
		name, _, err := binlog.RotateTarget(ev)
		if err != nil {
			return err
		}
		if !ev.Artificial() {
			g.files[g.file].Write(e.RawData)
		}
		g.file = name
		if g.files[name] == nil {
			g.files[name] = bytes.NewBuffer(append([]byte(nil), binlog.Magic...))
		}
		return nil
	}
	if ev.Artificial() || ev.Type() == binlog.TypeHeartbeat {
		return nil
	}
	g.files[g.file].Write(e.RawData)
	return nil
}

// goReader is a go-mysql BinlogSyncer in raw mode over verified TLS,
// handing every event to a synchronous handler.
type goReader struct {
	syncer *replication.BinlogSyncer
	mu     sync.Mutex
	err    error
}

// startGoReader reads from port from pos as user (repl on a master;
// plainslave, or slave1 with the client certificate, on replink) with
// server-id id, until the test ends.
func startGoReader(t testing.TB, p *PKI, port int, user string, id uint32, pos mysql.Position, h replication.EventHandler) *goReader {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	pass := "slavepass"
	switch user {
	case "repl":
		pass = "replpass"
	case "slave1":
		cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	r := &goReader{syncer: replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: id, Flavor: mysql.MariaDBFlavor, Host: "127.0.0.1", Port: uint16(port),
		User: user, Password: pass, RawModeEnabled: true, HeartbeatPeriod: time.Second,
		TLSConfig: tc, DisableRetrySync: true, SynchronousEventHandler: h,
		DumpCommandFlag: replication.BINLOG_SEND_ANNOTATE_ROWS_EVENT, Logger: logging.Slog(hclog.NewNullLogger()),
	})}
	st, err := r.syncer.StartSync(pos)
	if err != nil {
		t.Fatalf("go-mysql reader %d on port %d: %v", id, port, err)
	}
	go func() {
		if _, err := st.GetEvent(context.Background()); err != nil {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
		}
	}()
	t.Cleanup(r.syncer.Close)
	return r
}

// Err is how the reader's stream ended, if it did.
func (r *goReader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func TestTwentySlavesUnderLoad(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(255), n INT)")
	waitCaughtUp(t, m, r, 20*time.Second)

	// One real mariadbd slave...
	slave := startSlave(t, p, r.Port)
	// ...and 19 go-mysql clients over TLS.
	var slaves []*goSlave
	var readers []*goReader
	for i := 0; i < 19; i++ {
		g := &goSlave{file: "mariadb-bin.000001", files: map[string]*bytes.Buffer{"mariadb-bin.000001": bytes.NewBuffer(nil)}}
		readers = append(readers, startGoReader(t, p, r.Port, "plainslave", uint32(100+i), mysql.Position{Name: "mariadb-bin.000001", Pos: 4}, g))
		slaves = append(slaves, g)
	}

	// A steady write load for a bounded time, with a rotation in the middle.
	deadline := time.Now().Add(4 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		if n == 300 {
			m.Exec("FLUSH BINARY LOGS")
		}
		if n%10 == 0 {
			m.Exec("BEGIN", fmt.Sprintf("INSERT INTO app.t (v, n) VALUES (REPEAT('a', 200), %d), (REPEAT('b', 100), %d)", n, n),
				fmt.Sprintf("UPDATE app.t SET n = n + 1 WHERE id = %d", n/2+1), "COMMIT")
		} else {
			m.Exec(fmt.Sprintf("INSERT INTO app.t (v, n) VALUES ('row %d', %d)", n, n))
		}
		n++
	}
	t.Logf("%d transactions written with 20 slaves attached", n)
	waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("mariadbd slave: CHECKSUM TABLE master %s, slave %s", a, b)
	}
	if got := len(r.Relay.Slaves()); got != 20 {
		t.Fatalf("relay lists %d replicas, want 20", got)
	}
	// Every go-mysql slave has every event of every file, in order: its
	// bytes equal the relay files'.
	files := r.Log.Files()
	waitUntil(t, 30*time.Second, func() bool {
		for _, g := range slaves {
			g.mu.Lock()
			b := g.files[files[len(files)-1]]
			ok := b != nil && b.Len() == int(r.Log.Durable().Offset)
			g.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	for i, g := range slaves {
		if err := readers[i].Err(); err != nil {
			t.Errorf("go-mysql slave %d: %v", i, err)
		}
		g.mu.Lock()
		for _, f := range files {
			want, err := os.ReadFile(filepath.Join(r.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			got := g.files[f]
			if f == files[0] { // the first file's magic is not sent
				want = want[4:]
			}
			if got == nil || !bytes.Equal(got.Bytes(), want) {
				t.Errorf("go-mysql slave %d: %s differs (%d bytes, relay %d)", i, f, lenOf(got), len(want))
			}
		}
		g.mu.Unlock()
	}
}

func lenOf(b *bytes.Buffer) int {
	if b == nil {
		return -1
	}
	return b.Len()
}

// TestSlowSlave: a slave that reads very slowly holds back nobody: the
// upstream and a normal slave keep pace, and replink's memory does not
// grow with what the slow one has yet to read.
func TestSlowSlave(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v LONGBLOB)")
	waitCaughtUp(t, m, r, 20*time.Second)
	slave := startSlave(t, p, r.Port)

	// The slow slave: logs in, asks for a dump, then reads 1 KB every 50 ms.
	c := openDump(t, r.Port, p, true, "mariadb-bin.000001", 4, 77)
	stopSlow := make(chan struct{})
	go func() {
		buf := make([]byte, 1024)
		for {
			select {
			case <-stopSlow:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Conn.Conn.Read(buf); err != nil {
				return
			}
		}
	}()
	defer close(stopSlow)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 60; i++ { // ~30 MB the slow slave will not read
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, REPEAT(MD5(%d), 16000))", i, i))
	}
	waitCaughtUp(t, m, r, 30*time.Second)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	var slowLag int64
	for _, rs := range r.Relay.Slaves() {
		if rs.ServerID == 77 {
			slowLag = rs.LagBytes
		}
	}
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("the slow slave is %d bytes behind; the normal slave caught up; heap in use grew by %d bytes", slowLag, grew)
	if slowLag < 10<<20 {
		t.Fatalf("the slow slave is only %d bytes behind: it was not slow", slowLag)
	}
	if grew > 16<<20 {
		t.Fatalf("heap grew by %d bytes while a slave lagged %d bytes: replink buffers for slow slaves", grew, slowLag)
	}
}
