package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/logging"
	"github.com/replink/replink/replica"
)

// TestClientsFollowASwitchover: binlog clients streaming from replink
// through a planned switchover (mariadb-binlog --stop-never, go-mysql's
// BinlogSyncer) see every transaction of the domain once, in order: the
// old master's, then the new master's, across a ROTATE to the new
// master's file.
func TestClientsFollowASwitchover(t *testing.T) {
	if _, err := exec.LookPath("mariadb-binlog"); err != nil {
		t.Fatalf("mariadb-binlog is not installed (make setup installs mariadb-client): %v", err)
	}
	ft := newFailoverTopology(t)
	ft.m1.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(40))")
	r := StartReplink(t, ft.p, ft.m1.Port, ReplinkOptions{Users: slaveUsers(), Candidates: []int{ft.m2.Port, ft.m3.Port},
		Start: replica.Start{Kind: "file", Pos: binlog.Pos{File: "mariadb-bin.000001", Offset: 4}}})
	write(ft.m1, 1, 20, "on m1")
	waitCaughtUp(t, ft.m1, r, 20*time.Second)

	// mariadb-binlog, text, following the stream.
	out := filepath.Join(t.TempDir(), "stdout")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("mariadb-binlog", "--no-defaults", "--read-from-remote-server", "--protocol=tcp", "--host=127.0.0.1",
		fmt.Sprintf("--port=%d", r.Port), "--user=plainslave", "--password=slavepass", "--ssl-ca="+ft.p.CAFile, "--ssl-verify-server-cert",
		"--stop-never", "--stop-never-slave-server-id=91", "mariadb-bin.000001")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// go-mysql's BinlogSyncer.
	ca, err := os.ReadFile(ft.p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 92, Flavor: mysql.MariaDBFlavor, Host: "127.0.0.1", Port: uint16(r.Port), User: "plainslave", Password: "slavepass",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, HeartbeatPeriod: time.Second, DisableRetrySync: true,
		Logger: logging.Slog(hclog.NewNullLogger()),
	})
	defer syncer.Close()
	st, err := syncer.StartSync(mysql.Position{Name: "mariadb-bin.000001", Pos: 4})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var goSeqs []uint64
	var rotations []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			ev, err := st.GetEvent(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			switch e := ev.Event.(type) {
			case *replication.MariadbGTIDEvent:
				goSeqs = append(goSeqs, e.GTID.SequenceNumber)
			case *replication.RotateEvent:
				rotations = append(rotations, fmt.Sprintf("%s:%d", e.NextLogName, e.Position))
			}
			mu.Unlock()
		}
	}()

	ft.m1.Exec("SET GLOBAL read_only = ON")
	waitHas(t, ft.m1, ft.m2)
	promote(ft.m2)
	write(ft.m2, 21, 20, "on m2")
	last := ft.m2.Query("SELECT @@gtid_binlog_pos")[0][0]
	n, _ := strconv.ParseUint(last[strings.LastIndexByte(last, '-')+1:], 10, 64)
	want := func(seqs []uint64) string {
		for i, s := range seqs {
			if s != uint64(i+1) {
				return fmt.Sprintf("GTID %d is 0-x-%d", i, s)
			}
		}
		if uint64(len(seqs)) != n {
			return fmt.Sprintf("%d GTIDs, want %d", len(seqs), n)
		}
		return ""
	}
	gtidLine := regexp.MustCompile(`GTID 0-\d+-(\d+)`)
	textSeqs := func() []uint64 {
		b, _ := os.ReadFile(out)
		var seqs []uint64
		for _, m := range gtidLine.FindAllSubmatch(b, -1) {
			s, _ := strconv.ParseUint(string(m[1]), 10, 64)
			seqs = append(seqs, s)
		}
		return seqs
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		g := append([]uint64(nil), goSeqs...)
		mu.Unlock()
		txt := textSeqs()
		if want(g) == "" && want(txt) == "" {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out)
			t.Fatalf("after the switchover (the domain ends at %s): go-mysql %s; mariadb-binlog %s\n%s", last, want(g), want(txt), tail(b, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	t.Logf("each client saw GTIDs 1..%d of domain 0 once, in order; go-mysql's rotations: %v", n, rotations)
	mu.Unlock()
}
