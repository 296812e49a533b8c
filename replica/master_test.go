package replica

import (
	"errors"
	"slices"
	"testing"

	"github.com/replink/replink/binlog"
)

func state(t *testing.T, s string) *binlog.BinlogState {
	t.Helper()
	b, err := binlog.ParseBinlogState(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChoose(t *testing.T) {
	have := "0-1-100,0-2-7,1-1-5"
	srv := func(addr string, ro bool, st string) ServerState {
		return ServerState{Addr: addr, ReadOnly: ro, BinlogState: state(t, st)}
	}
	down := ServerState{Addr: "m1:3306", Err: errors.New("connection refused")}
	for _, c := range []struct {
		name     string
		servers  []ServerState
		result   string
		master   string
		missing  string
		writable []string
	}{
		{"the old master is still writable", []ServerState{srv("m1:3306", false, have), srv("m2:3306", true, have)}, "ok", "m1:3306", "", nil},
		{"promoted, caught up", []ServerState{srv("m1:3306", true, have), srv("m2:3306", false, "0-1-100,0-2-7,1-1-5,0-3-1")}, "ok", "m2:3306", "", nil},
		{"promoted after a crash, caught up", []ServerState{down, srv("m2:3306", false, "0-2-7,1-1-5,0-1-100")}, "ok", "m2:3306", "", nil},
		{"promoted, lacking the last transactions", []ServerState{down, srv("m2:3306", false, "0-1-98,0-2-7")}, "diverged", "m2:3306", "0-1-100,1-1-5", nil},
		{"two writable", []ServerState{srv("m2:3306", false, have), srv("m3:3306", false, have)}, "ambiguous", "", "", []string{"m2:3306", "m3:3306"}},
		{"none writable yet", []ServerState{down, srv("m2:3306", true, have), srv("m3:3306", true, have)}, "none", "", "", nil},
		{"an unreachable server does not count as writable", []ServerState{down, srv("m2:3306", false, have)}, "ok", "m2:3306", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Choose(state(t, have), c.servers)
			var missing []string
			for _, g := range got.Missing {
				missing = append(missing, g.String())
			}
			if got.Result != c.result || got.Master.Addr != c.master || gtids(got.Missing) != c.missing || !slices.Equal(got.Writable, c.writable) {
				t.Fatalf("Choose = %s %q missing %v writable %v; want %s %q missing %q writable %v (%s)",
					got.Result, got.Master.Addr, missing, got.Writable, c.result, c.master, c.missing, c.writable, got)
			}
		})
	}
}

func TestParseBinlogStateKeepsEveryServer(t *testing.T) {
	b := state(t, "0-1-100,0-2-7,1-1-5")
	if got := b.String(); got != "0-1-100,0-2-7,1-1-5" {
		t.Fatalf("String() = %q", got)
	}
	if !b.Has(binlog.MariaGTID{Domain: 0, Server: 1, Seq: 99}) || b.Has(binlog.MariaGTID{Domain: 0, Server: 2, Seq: 8}) {
		t.Fatal("Has is wrong for a state with two servers in a domain")
	}
	if _, err := binlog.ParseBinlogState("0-1"); err == nil {
		t.Fatal("a malformed state was taken")
	}
}
