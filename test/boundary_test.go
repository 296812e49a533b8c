package test

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/packet"
	"github.com/replink/replink/relay"
)

// rawClient speaks just enough of the client side of the protocol to send
// what no well-behaved client would.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	salt []byte
	seq  uint8
}

func dialRaw(t *testing.T, port int) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawClient{t: t, c: c}
	g := rc.read()
	// protocol 10, version NUL, id 4, salt 8, NUL, caps 2, charset, status 2, caps 2, len, 10 reserved, salt 12 NUL, plugin
	i := 1 + strings.IndexByte(string(g[1:]), 0) + 1 + 4
	rc.salt = append(append([]byte{}, g[i:i+8]...), g[i+8+1+2+1+2+2+1+10:][:12]...)
	return rc
}

func (rc *rawClient) read() []byte {
	rc.t.Helper()
	p, seq, err := packet.ReadOne(rc.c, rc.seq, 1<<20)
	if err != nil {
		rc.t.Fatalf("reading from the relay: %v", err)
	}
	rc.seq = seq
	return p
}

func (rc *rawClient) write(p []byte) {
	rc.t.Helper()
	h := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), rc.seq}
	rc.seq++
	if _, err := rc.c.Write(append(h, p...)); err != nil {
		rc.t.Fatalf("writing to the relay: %v", err)
	}
}

// scramble is mysql_native_password's answer to the greeting's salt.
func (rc *rawClient) scramble(password string) []byte {
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(rc.salt)
	h.Write(h2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// login sends a login packet for user with attrs as the raw connection
// attributes field, and returns the answer's first byte (0 OK, 0xff ERR).
func (rc *rawClient) login(user, password string, attrs []byte) []byte {
	rc.t.Helper()
	caps := uint32(mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH |
		mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_LONG_PASSWORD)
	if attrs != nil {
		caps |= mysql.CLIENT_CONNECT_ATTRS
	}
	p := []byte{byte(caps), byte(caps >> 8), byte(caps >> 16), byte(caps >> 24), 0, 0, 0, 1, 33}
	p = append(p, make([]byte, 23)...)
	p = append(append(p, user...), 0)
	auth := rc.scramble(password)
	p = append(append(p, byte(len(auth))), auth...)
	p = append(append(p, "mysql_native_password"...), 0)
	p = append(p, attrs...)
	rc.write(p)
	return rc.read()
}

// command sends one command packet and returns the answer's first packet,
// reading the rest of a result set.
func (rc *rawClient) command(p []byte) []byte {
	rc.t.Helper()
	rc.seq = 0
	rc.write(p)
	first := rc.read()
	if len(first) > 0 && first[0] != 0x00 && first[0] != 0xff { // a result set: fields, EOF, rows, EOF
		for eofs := 0; eofs < 2; {
			if q := rc.read(); len(q) > 0 && q[0] == 0xfe && len(q) < 9 {
				eofs++
			}
		}
	}
	return first
}

// TestHostileInputClosesOnlyItsConnection: inputs that made go-mysql's
// server code (or replink's) panic, which ended the process and the
// master link with it. Each now gets an answer; the slave that was
// replicating goes on, and a new client logs in.
func TestHostileInputClosesOnlyItsConnection(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	slave := startSlave(t, p, r.Port)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)

	cases := []struct {
		name string
		run  func(rc *rawClient)
	}{
		{"connection attributes cut to one 0xfc byte", func(rc *rawClient) {
			if got := rc.login("plainslave", "slavepass", []byte{0xfc}); got[0] != 0x00 {
				t.Fatalf("login with cut attributes answered %x, want OK (the attributes are not needed)", got)
			}
		}},
		{"unknown user with cut attributes", func(rc *rawClient) {
			if got := rc.login("nobody", "x", []byte{0xfc}); got[0] != 0xff {
				t.Fatalf("answered %x, want ERR", got)
			}
		}},
		{"empty command after login", func(rc *rawClient) {
			rc.login("plainslave", "slavepass", nil)
			if got := rc.command(nil); got[0] != 0xff || uint16(got[1])|uint16(got[2])<<8 != mysql.ER_UNKNOWN_COM_ERROR {
				t.Fatalf("empty command answered %x, want ERR 1047", got)
			}
			if got := rc.command([]byte{mysql.COM_PING}); got[0] != 0x00 {
				t.Fatalf("ping after the empty command answered %x, want OK", got)
			}
		}},
		{"SHOW VARIABLES with bytes that upper-case to more bytes", func(rc *rawClient) {
			rc.login("plainslave", "slavepass", nil)
			if got := rc.command(append([]byte{mysql.COM_QUERY}, "SHOW VARIABLES \xff\xff\xff\xff LIKE x"...)); len(got) == 0 {
				t.Fatal("no answer")
			}
			if got := rc.command([]byte{mysql.COM_PING}); got[0] != 0x00 {
				t.Fatalf("ping after the query answered %x, want OK", got)
			}
		}},
		{"a login packet claiming 16 MB", func(rc *rawClient) {
			rc.c.Write([]byte{0xff, 0xff, 0xff, 0x01})
			if b, _ := io.ReadAll(rc.c); len(b) > 0 && b[0] != 0xff {
				t.Fatalf("answered %x", b)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(dialRaw(t, r.Port))
		})
	}
	// Still a master to its slaves: rows arrive, and a new login works.
	m.Exec("INSERT INTO app.t VALUES (1), (2)")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("CHECKSUM TABLE: master %s, slave %s", a, b)
	}
	c, err := client.Connect(fmt.Sprintf("127.0.0.1:%d", r.Port), "plainslave", "slavepass", "")
	if err != nil {
		t.Fatalf("a new login after the hostile inputs: %v", err)
	}
	c.Close()
	if st := r.Replica.Status(); st.State != "streaming" {
		t.Fatalf("master link %s after the hostile inputs, want streaming", st.State)
	}
}

// TestFailedLoginsAllLookAlike: an unknown user and a wrong password get
// the same error, 1045 with the master's words, so the relay port tells a
// scanner nothing about which accounts exist.
func TestFailedLoginsAllLookAlike(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	addr := fmt.Sprintf("127.0.0.1:%d", r.Port)
	for _, tc := range []struct{ user, password string }{
		{"plainslave", "wrong"},
		{"nobody", "wrong"},
		{"nobody", ""},
	} {
		_, err := client.Connect(addr, tc.user, tc.password, "")
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != mysql.ER_ACCESS_DENIED_ERROR {
			t.Fatalf("login %s/%q: %v, want ERR 1045", tc.user, tc.password, err)
		}
		using := "YES"
		if tc.password == "" {
			using = "NO"
		}
		want := fmt.Sprintf("Access denied for user '%s'@'127.0.0.1' (using password: %s)", tc.user, using)
		if me.Message != want {
			t.Fatalf("login %s/%q: %q, want %q", tc.user, tc.password, me.Message, want)
		}
	}
	if v := rejected(t, r, "auth"); v != 3 {
		t.Fatalf("replink_relay_connections_rejected_total{reason=auth} = %v, want 3", v)
	}
}

// rejected reads replink_relay_connections_rejected_total{reason}.
func rejected(t *testing.T, r *Replink, reason string) float64 {
	t.Helper()
	mfs, err := r.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "replink_relay_connections_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no replink_relay_connections_rejected_total{reason=%q}", reason)
	return 0
}

// TestHeadersThatClaimMuchCostLittle: before login a packet header that
// claims 16 MB buys no memory, and the connection is refused at once.
// (100 such connections took 1.6 GB of go-mysql's buffers.)
func TestHeadersThatClaimMuchCostLittle(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), HandshakeTimeout: 5 * time.Second})
	for _, reason := range relay.RejectReasons {
		_ = rejected(t, r, reason) // every reason exists from the start
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port))
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, 4)); err != nil { // the greeting's header
				return
			}
			c.Write([]byte{0xff, 0xff, 0xff, 0x01})
			io.Copy(io.Discard, c) // until replink closes it
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("the 100 connections were held for %s, want them refused at once (handshake timeout 5s)", d)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.TotalAlloc) - int64(before.TotalAlloc); grew > 64<<20 {
		t.Fatalf("100 connections claiming 16 MB each made the process allocate %d MB", grew>>20)
	}
	if v := rejected(t, r, "protocol"); v < 100 {
		t.Fatalf("replink_relay_connections_rejected_total{reason=protocol} = %v, want 100", v)
	}
}
