package test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// readAll reads from c until it closes or d passes.
func readAll(c net.Conn, d time.Duration) []byte {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, _ := io.ReadAll(c)
	return b
}

// TestNoBinlogBeforeAuthentication: a peer that skips or fails the login
// and asks for a dump gets the greeting and an error, never binlog data.
func TestNoBinlogBeforeAuthentication(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), HandshakeTimeout: 2 * time.Second})
	m.Exec("CREATE DATABASE secret", "CREATE TABLE secret.t (v VARCHAR(64))", "INSERT INTO secret.t VALUES ('top-secret-row')")
	waitCaughtUp(t, m, r, 20*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", r.Port)
	file := "mariadb-bin.000001"
	dump := func(seq byte) []byte { // COM_BINLOG_DUMP from position 4
		body := append([]byte{0x12, 4, 0, 0, 0, 0, 0, 9, 0, 0, 0}, file...)
		return append([]byte{byte(len(body)), byte(len(body) >> 8), 0, seq}, body...)
	}
	cases := map[string]func(c net.Conn){
		"dump instead of login": func(c net.Conn) { c.Write(dump(1)) },
		"garbage": func(c net.Conn) {
			g := make([]byte, 4096)
			rand.Read(g)
			c.Write(g)
		},
		"login for a user that does not exist, then dump": func(c net.Conn) {
			// capabilities (protocol 41, secure conn, plugin auth), max packet, charset, filler, user, empty auth
			resp := []byte{0x05, 0xa2, 0x0a, 0x00, 0, 0, 0, 1, 33}
			resp = append(resp, make([]byte, 23)...)
			resp = append(resp, "nobody\x00"...)
			resp = append(resp, 0, 'm', 'y', 's', 'q', 'l', '_', 'n', 'a', 't', 'i', 'v', 'e', '_', 'p', 'a', 's', 's', 'w', 'o', 'r', 'd', 0)
			c.Write(append([]byte{byte(len(resp)), 0, 0, 1}, resp...))
			c.Write(dump(0))
		},
		"silent": func(c net.Conn) {},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			send(c)
			start := time.Now()
			got := readAll(c, 10*time.Second)
			if time.Since(start) > 8*time.Second {
				t.Fatalf("the relay kept an unauthenticated peer for %s", time.Since(start))
			}
			for _, leak := range [][]byte{{0xfe, 0x62, 0x69, 0x6e}, []byte("top-secret-row"), []byte(file)} {
				if bytes.Contains(got, leak) {
					t.Fatalf("an unauthenticated peer received %q", leak)
				}
			}
			if len(got) > 512 {
				t.Fatalf("an unauthenticated peer received %d bytes; a greeting and an error are far less", len(got))
			}
		})
	}
}

// TestConnectionFloodLeavesSlavesAlone: hundreds of garbage and half-open
// connections are refused or timed out while a slave keeps replicating.
func TestConnectionFloodLeavesSlavesAlone(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), HandshakeTimeout: time.Second, MaxConnections: 40})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	slave := startSlave(t, p, r.Port)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)

	addr := fmt.Sprintf("127.0.0.1:%d", r.Port)
	var wg sync.WaitGroup
	stop := time.Now().Add(4 * time.Second)
	var mu sync.Mutex
	held := 0
	var timedOut atomic.Int32 // half-open connections replink closed
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					continue
				}
				mu.Lock()
				keep := held < 100 // keep some half-open: they must be timed out
				if keep {
					held++
				}
				mu.Unlock()
				if keep {
					go func() {
						defer c.Close()
						_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
						if _, err := io.Copy(io.Discard, c); err == nil { // closed by replink, not by the deadline
							timedOut.Add(1)
						}
					}()
					continue
				}
				g := make([]byte, 64)
				rand.Read(g)
				c.Write(g)
				c.Close()
			}
		}()
	}
	for i := 0; i < 100; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", i))
	}
	wg.Wait()
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("CHECKSUM TABLE during the flood: master %s, slave %s", a, b)
	}
	if n := len(r.Relay.Slaves()); n != 1 {
		t.Fatalf("%d replicas dumping, want the one slave", n)
	}
	if !strings.Contains(r.Logs(), "too many connections logging in at once") {
		t.Fatal("the handshake limit was never reached or never logged")
	}
	// The half-open ones are timed out: a new slave login works again.
	waitUntil(t, 5*time.Second, func() bool { return int(timedOut.Load()) == held })
	slave.Exec("STOP SLAVE", "START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
}
