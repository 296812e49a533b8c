package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/logging"
)

// The differential harness for an in-process binlog client: go-mysql's
// BinlogSyncer run once against the master and once against replink on
// the same binlog; the events it parsed, header and decoded content,
// must be the same but for the server id of artificial events.

// GoMySQLRun is one way of running a BinlogSyncer.
type GoMySQLRun struct {
	Flavor string // mysql.MariaDBFlavor or mysql.MySQLFlavor
	// Pos starts a file/position dump (StartSync) when GTID is empty.
	Pos mysql.Position
	// GTID starts a GTID dump (StartSyncGTID) from this set, in the
	// flavour's syntax.
	GTID string
	// Until is the workload's last event: the file it is in and its
	// end position. The run stops there (then waits a little for the
	// first heartbeat); with an empty Name it runs until the stream ends
	// or Timeout.
	Until mysql.Position
	// Timeout bounds the whole run; 60s when zero.
	Timeout time.Duration
}

// GoMySQLOutput is what one run parsed.
type GoMySQLOutput struct {
	Endpoint ClientEndpoint
	// Events is every event up to Until, heartbeats left out.
	Events []GoMySQLEvent
	// Heartbeats counts the heartbeats among them.
	Heartbeats int
	// AfterEnd is the first heartbeat (or any event) after Until, if one
	// came in heartbeatWait.
	AfterEnd *GoMySQLEvent
	// Reached is when Until was seen, from the start.
	Reached time.Duration
	// Ended says how the run ended: "reached <file>:<pos>", "error: ...",
	// "start failed: ..." or "timeout: ...".
	Ended string
	Err   error // the error that ended the stream or the start, if any
	Took  time.Duration
}

// GoMySQLEvent is one parsed event as named fields, the header's first.
type GoMySQLEvent struct {
	Type   string
	Fields []EventField
	// ServerID is the header's, also where the compared field masks it.
	ServerID uint32
}

// EventField is one compared property of an event.
type EventField struct{ Name, Value string }

// Field is the value of the named field ("" when the event has none).
func (e GoMySQLEvent) Field(name string) string {
	for _, f := range e.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func (e GoMySQLEvent) String() string {
	return fmt.Sprintf("%s@%s", e.Type, e.Field("log_pos"))
}

// heartbeatWait is how long a run waits past Until for a heartbeat: more
// than the one-second period asked for.
const heartbeatWait = 2500 * time.Millisecond

// RunGoMySQL runs a BinlogSyncer against e with server id id over
// verified TLS and collects what it parsed. The syncer is closed before
// it returns.
func RunGoMySQL(t *testing.T, run GoMySQLRun, e ClientEndpoint, id uint32) (o GoMySQLOutput) {
	t.Helper()
	timeout := run.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ca, err := os.ReadFile(e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s: no certificate in %s", e.Name, e.CAFile)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: id, Flavor: run.Flavor, Host: e.Host, Port: uint16(e.Port), User: e.User, Password: e.Password,
		TLSConfig:       &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		HeartbeatPeriod: time.Second, DisableRetrySync: true,
		Logger: logging.Slog(hclog.NewNullLogger()),
	})
	defer syncer.Close()

	o.Endpoint = e
	start := time.Now()
	defer func() {
		o.Took = time.Since(start)
		t.Logf("%s: %s after %s (the end after %s); %d events, %d heartbeats before the end; artificial server ids %v",
			e.Name, o.Ended, o.Took.Round(time.Millisecond), o.Reached.Round(time.Millisecond), len(o.Events), o.Heartbeats, artificialIDs(o))
	}()
	var st *replication.BinlogStreamer
	if run.GTID != "" {
		var set mysql.GTIDSet
		if set, err = mysql.ParseGTIDSet(run.Flavor, run.GTID); err != nil {
			t.Fatalf("GTID set %q: %v", run.GTID, err)
		}
		st, err = syncer.StartSyncGTID(set)
	} else {
		st, err = syncer.StartSync(run.Pos)
	}
	if err != nil {
		o.Err, o.Ended = err, "start failed: "+err.Error()
		return o
	}

	deadline := start.Add(timeout)
	var file string  // the file the events are from, as rotates say
	var reached bool // Until seen; waiting for a heartbeat
	var waitEnd time.Time
	for n := 0; ; n++ {
		until := deadline
		if reached {
			until = waitEnd
		}
		ctx, cancel := context.WithDeadline(context.Background(), until)
		ev, err := st.GetEvent(ctx)
		cancel()
		switch {
		case err != nil && reached && errors.Is(err, context.DeadlineExceeded):
			o.Ended = fmt.Sprintf("reached %s:%d", run.Until.Name, run.Until.Pos)
			return o
		case err != nil && errors.Is(err, context.DeadlineExceeded):
			o.Ended = fmt.Sprintf("timeout: nothing more after %s, at %s:%s (%d events)", timeout, file, lastPos(o.Events), len(o.Events))
			return o
		case err != nil:
			o.Err, o.Ended = err, "error: "+err.Error()
			return o
		}
		d := describeGoMySQLEvent(ev, n == 0)
		if reached {
			o.AfterEnd = &d
			o.Ended = fmt.Sprintf("reached %s:%d", run.Until.Name, run.Until.Pos)
			return o
		}
		if _, ok := ev.Event.(*replication.HeartbeatEvent); ok {
			o.Heartbeats++
			continue
		}
		o.Events = append(o.Events, d)
		if r, ok := ev.Event.(*replication.RotateEvent); ok {
			file = string(r.NextLogName)
		}
		if run.Until.Name != "" && file == run.Until.Name && ev.Header.LogPos == run.Until.Pos {
			reached, waitEnd = true, time.Now().Add(heartbeatWait)
			o.Reached = time.Since(start)
		}
	}
}

// artificialIDs lists the server ids the comparison masked, per event
// type, the event after the end included.
func artificialIDs(o GoMySQLOutput) map[string][]uint32 {
	ids := map[string][]uint32{}
	evs := o.Events
	if o.AfterEnd != nil {
		evs = append(slices.Clip(evs), *o.AfterEnd)
	}
	for _, e := range evs {
		if e.Field("server id") == "<artificial>" && !slices.Contains(ids[e.Type], e.ServerID) {
			ids[e.Type] = append(ids[e.Type], e.ServerID)
		}
	}
	return ids
}

func lastPos(evs []GoMySQLEvent) string {
	if len(evs) == 0 {
		return "(none)"
	}
	return evs[len(evs)-1].Field("log_pos")
}

// describeGoMySQLEvent names what is compared of one event: the header
// (the server id masked on artificial events: timestamp 0 with
// LOG_EVENT_ARTIFICIAL_F, the first fake ROTATE, heartbeats) and the
// decoded content.
func describeGoMySQLEvent(ev *replication.BinlogEvent, first bool) GoMySQLEvent {
	h := ev.Header
	d := GoMySQLEvent{Type: h.EventType.String(), ServerID: h.ServerID}
	add := func(name string, format string, args ...any) {
		d.Fields = append(d.Fields, EventField{name, fmt.Sprintf(format, args...)})
	}
	serverID := fmt.Sprint(h.ServerID)
	_, heartbeat := ev.Event.(*replication.HeartbeatEvent)
	if h.Timestamp == 0 && h.Flags&replication.LOG_EVENT_ARTIFICIAL_F != 0 ||
		first && h.EventType == replication.ROTATE_EVENT || heartbeat {
		serverID = "<artificial>"
	}
	add("type", "%s", h.EventType)
	add("log_pos", "%d", h.LogPos)
	add("flags", "0x%04x", h.Flags)
	add("server id", "%s", serverID)
	add("timestamp", "%d", h.Timestamp)
	add("size", "%d", h.EventSize)

	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		add("next name", "%s", e.NextLogName)
		add("next position", "%d", e.Position)
	case *replication.FormatDescriptionEvent:
		add("binlog version", "%d", e.Version)
		add("server version", "%s", e.ServerVersion)
		add("create timestamp", "%d", e.CreateTimestamp)
		add("checksum", "%d", e.ChecksumAlgorithm)
	case *replication.MariadbGTIDEvent:
		add("gtid", "%s", e.GTID.String())
		add("gtid flags", "0x%02x", e.Flags)
		add("commit id", "%d", e.CommitID)
	case *replication.MariadbGTIDListEvent:
		var gtids []string
		for _, g := range e.GTIDs {
			gtids = append(gtids, g.String())
		}
		add("gtid list", "[%s]", strings.Join(gtids, ","))
	case *replication.MariadbBinlogCheckPointEvent:
		add("checkpoint", "%s", e.Info)
	case *replication.MariadbAnnotateRowsEvent:
		add("annotate", "%s", digestLong(e.Query))
	case *replication.QueryEvent:
		add("schema", "%s", e.Schema)
		add("query", "%s", e.Query)
		add("error code", "%d", e.ErrorCode)
	case *replication.TableMapEvent:
		add("table", "%s.%s", e.Schema, e.Table)
		add("table id", "%d", e.TableID)
		add("column types", "%x", e.ColumnType)
		add("column meta", "%v", e.ColumnMeta)
	case *replication.RowsEvent:
		if e.Table != nil {
			add("table", "%s.%s", e.Table.Schema, e.Table.Table)
		}
		add("table id", "%d", e.TableID)
		add("rows flags", "0x%04x", e.Flags)
		add("columns", "%d", e.ColumnCount)
		add("rows", "%#v", digestRows(e.Rows))
	case *replication.XIDEvent:
		add("xid", "%d", e.XID)
	case *replication.IntVarEvent:
		add("intvar", "%d=%d", e.Type, e.Value)
	case *replication.HeartbeatEvent:
		add("heartbeat file", "%s", e.Filename)
		add("heartbeat offset", "%d", e.Offset)
	case *replication.GenericEvent:
		add("data", "%x", e.Data)
	default:
		var b bytes.Buffer
		ev.Event.Dump(&b)
		add("content", "%T %s", ev.Event, b.String())
	}
	return d
}

// DiffGoMySQL describes every difference between the master's run (m)
// and replink's (r): how each ended, each event by index (field by field;
// from the first event whose type differs, the sequences are listed and
// no longer compared), the count, and the first event after the end.
func DiffGoMySQL(m, r GoMySQLOutput) []string {
	const maxEventDiffs = 12
	var diffs []string
	if m.Ended != r.Ended {
		diffs = append(diffs, fmt.Sprintf("ended: master %q, replink %q", m.Ended, r.Ended))
	}
	if len(m.Events) != len(r.Events) {
		diffs = append(diffs, fmt.Sprintf("event count: master %d, replink %d", len(m.Events), len(r.Events)))
	}
	shown := 0
	for i := 0; i < len(m.Events) && i < len(r.Events); i++ {
		me, re := m.Events[i], r.Events[i]
		if me.Type != re.Type {
			diffs = append(diffs, fmt.Sprintf("event #%d: type: master %s, replink %s\n    master events from there:  %s\n    replink events from there: %s",
				i, me, re, goEventList(m.Events[i:]), goEventList(r.Events[i:])))
			return append(diffs, diffAfterEnd(m, r)...)
		}
		if fd := diffEventFields(me, re); fd != "" {
			if shown == maxEventDiffs {
				diffs = append(diffs, "... more events differ")
				break
			}
			shown++
			diffs = append(diffs, fmt.Sprintf("event #%d (%s at master log_pos %s): %s", i, me.Type, me.Field("log_pos"), fd))
		}
	}
	if n := min(len(m.Events), len(r.Events)); len(m.Events) != len(r.Events) {
		diffs = append(diffs, fmt.Sprintf("events from #%d: master %s, replink %s", n, goEventList(m.Events[n:]), goEventList(r.Events[n:])))
	}
	return append(diffs, diffAfterEnd(m, r)...)
}

func diffAfterEnd(m, r GoMySQLOutput) []string {
	switch {
	case m.AfterEnd == nil && r.AfterEnd == nil:
		return nil
	case m.AfterEnd == nil || r.AfterEnd == nil:
		return []string{fmt.Sprintf("after the end: master %s, replink %s", afterEnd(m), afterEnd(r))}
	}
	if fd := diffEventFields(*m.AfterEnd, *r.AfterEnd); fd != "" {
		return []string{"after the end: " + fd}
	}
	return nil
}

func afterEnd(o GoMySQLOutput) string {
	if o.AfterEnd == nil {
		return fmt.Sprintf("nothing in %s", heartbeatWait)
	}
	return describeFields(*o.AfterEnd)
}

// diffEventFields lists the fields in which two events differ.
func diffEventFields(a, b GoMySQLEvent) string {
	var parts []string
	names := map[string]bool{}
	for _, f := range a.Fields {
		names[f.Name] = true
		if v := b.Field(f.Name); v != f.Value {
			parts = append(parts, fmt.Sprintf("%s: master %s, replink %s", f.Name, shortValue(f.Value), shortValue(v)))
		}
	}
	for _, f := range b.Fields {
		if !names[f.Name] {
			parts = append(parts, fmt.Sprintf("%s: master (none), replink %s", f.Name, shortValue(f.Value)))
		}
	}
	return strings.Join(parts, "; ")
}

// shortValue quotes a value, cut to a readable length (with its size and
// digest when cut, so two long values that differ late still look
// different).
func shortValue(v string) string {
	if len(v) <= 120 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%q... (%d bytes, sha256 %x)", v[:120], len(v), sha256.Sum256([]byte(v)))
}

func describeFields(e GoMySQLEvent) string {
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, f.Name+"="+shortValue(f.Value))
	}
	return strings.Join(parts, " ")
}

// goEventList names up to six events: Type@log_pos, with the decoded
// name of rotates and GTIDs.
func goEventList(evs []GoMySQLEvent) string {
	if len(evs) == 0 {
		return "(none)"
	}
	var parts []string
	for k, e := range evs {
		if k == 6 {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(evs)-k))
			break
		}
		s := e.String()
		for _, name := range []string{"next name", "gtid", "gtid list", "table"} {
			if v := e.Field(name); v != "" {
				s += "(" + v + ")"
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// longValue is the length past which a value is compared by its SHA-256:
// formatting a 17 MB row with %#v under the race detector took minutes.
const longValue = 4096

// digestLong is b, or its length and SHA-256 when it is long.
func digestLong(b []byte) string {
	if len(b) <= longValue {
		return string(b)
	}
	return fmt.Sprintf("<%d bytes, sha256 %x>", len(b), sha256.Sum256(b))
}

// digestRows is rows with every long string or []byte value replaced by
// its digest.
func digestRows(rows [][]interface{}) [][]interface{} {
	out := make([][]interface{}, len(rows))
	for i, row := range rows {
		out[i] = make([]interface{}, len(row))
		for j, v := range row {
			switch x := v.(type) {
			case []byte:
				if len(x) > longValue {
					v = digestLong(x)
				}
			case string:
				if len(x) > longValue {
					v = digestLong([]byte(x))
				}
			}
			out[i][j] = v
		}
	}
	return out
}
