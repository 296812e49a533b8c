package test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The differential client harness: one binlog client, run twice on the
// same binlog, once against the real master and once against replink;
// what it produced must be the same (SPEC: "replink is a master to its
// clients"). A client is a row: a command builder, how long to let it
// run, and a collector that turns what it wrote into named artefacts.

// ClientEndpoint is the server a client under test connects to.
type ClientEndpoint struct {
	Name           string // "master" or "replink", for messages
	Host           string
	Port           int
	User, Password string
	CAFile         string // verified TLS: the CA the server's certificate chains to
}

// ClientOutput is what one run of a client produced.
type ClientOutput struct {
	Endpoint       ClientEndpoint
	Stdout, Stderr []byte
	// Files is every regular file the client wrote into its output
	// directory, by name.
	Files map[string][]byte
	// Ended says how the run ended: "exit 0", "exit status 1",
	// "killed: waiting (output stable for 2s)" (still running once its
	// output stopped growing) or "killed: still writing after 1m0s".
	Ended string
	Took  time.Duration
}

// ClientRun is one way of running a client.
type ClientRun struct {
	// Command builds the client's command line for the endpoint; outDir
	// is an empty directory it may write into. Stdout and Stderr are set
	// by the harness.
	Command func(e ClientEndpoint, outDir string) *exec.Cmd
	// Settle: a client still running after its output (stdout and the
	// files in outDir) stopped growing for Settle is waiting for more
	// (--stop-never, or a hang): it is killed and its output compared.
	// 2s when zero.
	Settle time.Duration
	// Timeout kills the client whatever it does; 60s when zero.
	Timeout time.Duration
	// Collect turns one run's output into the named artefacts compared
	// between master and replink (stdoutArtefacts when nil).
	Collect func(o ClientOutput) []Artefact
}

// Artefact is one named thing a client produced, compared byte for byte
// (after the collector's normalisation).
type Artefact struct {
	Name string
	Data []byte
	// Text: report a difference as differing lines, not bytes.
	Text bool
}

// RunClientBoth runs the client against the master, then against
// replink, and returns both outputs.
func RunClientBoth(t *testing.T, run ClientRun, master, replink ClientEndpoint) (m, r ClientOutput) {
	t.Helper()
	return RunClient(t, run, master), RunClient(t, run, replink)
}

// RunClient runs the client once against e. With REPLINK_CLIENTS_OUT set,
// the output is also kept under that directory (per test and endpoint).
func RunClient(t *testing.T, run ClientRun, e ClientEndpoint) ClientOutput {
	t.Helper()
	settle, timeout := run.Settle, run.Timeout
	if settle == 0 {
		settle = 2 * time.Second
	}
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	work := t.TempDir()
	outDir := filepath.Join(work, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, err := os.Create(filepath.Join(work, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(work, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()

	cmd := run.Command(e, outDir)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start %s: %v", e.Name, cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	o := ClientOutput{Endpoint: e}
	size, stableSince := int64(-1), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
wait:
	for {
		select {
		case err := <-exited:
			o.Ended = endedAs(err)
			break wait
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			o.Ended = fmt.Sprintf("killed: still writing after %s", timeout)
			break wait
		case <-tick.C:
			n := outputSize(stdout.Name(), outDir)
			if n != size {
				size, stableSince = n, time.Now()
				continue
			}
			if time.Since(stableSince) >= settle {
				_ = cmd.Process.Kill()
				o.Ended = endedAs(<-exited)
				if o.Ended == "signal: killed" { // not ended by itself just then
					o.Ended = fmt.Sprintf("killed: waiting (output stable for %s)", settle)
				}
				break wait
			}
		}
	}
	o.Took = time.Since(start)
	o.Stdout, _ = os.ReadFile(stdout.Name())
	o.Stderr, _ = os.ReadFile(stderr.Name())
	o.Files = map[string][]byte{}
	entries, _ := os.ReadDir(outDir)
	for _, en := range entries {
		if en.Type().IsRegular() {
			o.Files[en.Name()], _ = os.ReadFile(filepath.Join(outDir, en.Name()))
		}
	}
	if keep := os.Getenv("REPLINK_CLIENTS_OUT"); keep != "" {
		keepOutput(t, filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"), e.Name), o)
	}
	t.Logf("%s: %s after %s; stdout %d bytes, stderr %d bytes, files %s",
		e.Name, o.Ended, o.Took.Round(time.Millisecond), len(o.Stdout), len(o.Stderr), fileSizes(o.Files))
	return o
}

// endedAs describes how a client's process ended: "exit 0", "exit
// status 1", "signal: killed".
func endedAs(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	default:
		return err.Error()
	}
}

// outputSize is the size of stdout plus every file in dir.
func outputSize(stdout, dir string) int64 {
	var n int64
	if fi, err := os.Stat(stdout); err == nil {
		n += fi.Size()
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if fi, err := en.Info(); err == nil {
			n += fi.Size() + 1 // a new empty file counts as growth
		}
	}
	return n
}

func keepOutput(t *testing.T, dir string, o ClientOutput) {
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Logf("keep output: %v", err)
		return
	}
	_ = os.WriteFile(filepath.Join(dir, "stdout"), o.Stdout, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "stderr"), o.Stderr, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "ended"), []byte(o.Ended+"\n"), 0o644)
	for name, data := range o.Files {
		_ = os.WriteFile(filepath.Join(dir, "files", filepath.Base(name)), data, 0o644)
	}
}

func fileSizes(files map[string][]byte) string {
	if len(files) == 0 {
		return "none"
	}
	var parts []string
	for _, name := range sortedNames(files) {
		parts = append(parts, fmt.Sprintf("%q=%d", name, len(files[name])))
	}
	return strings.Join(parts, " ")
}

func sortedNames(files map[string][]byte) []string { return slices.Sorted(maps.Keys(files)) }

// CompareClients runs the client against both servers and fails t with
// every difference between what it produced from each.
func CompareClients(t *testing.T, run ClientRun, master, replink ClientEndpoint) {
	t.Helper()
	m, r := RunClientBoth(t, run, master, replink)
	collect := run.Collect
	if collect == nil {
		collect = stdoutArtefacts
	}
	if diffs := DiffClientOutputs(m, r, collect); len(diffs) > 0 {
		t.Errorf("replink differs from the master in %d way(s):\n- %s", len(diffs), strings.Join(diffs, "\n- "))
	}
}

// DiffClientOutputs describes every difference between the master's run
// (m) and replink's (r): how each ended, then each artefact.
func DiffClientOutputs(m, r ClientOutput, collect func(ClientOutput) []Artefact) []string {
	var diffs []string
	if m.Ended != r.Ended {
		diffs = append(diffs, fmt.Sprintf("ended: master %q, replink %q", m.Ended, r.Ended))
	}
	ma, ra := collect(m), collect(r)
	byName := map[string]Artefact{}
	for _, a := range ra {
		byName[a.Name] = a
	}
	seen := map[string]bool{}
	for _, a := range ma {
		seen[a.Name] = true
		b, ok := byName[a.Name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: master %d bytes, replink none", a.Name, len(a.Data)))
			continue
		}
		if d := diffArtefact(a, b); d != "" {
			diffs = append(diffs, d)
		}
	}
	for _, b := range ra {
		if !seen[b.Name] {
			diffs = append(diffs, fmt.Sprintf("%s: replink %d bytes (%s), master none", b.Name, len(b.Data), excerpt(b.Data, 0, 48)))
		}
	}
	return diffs
}

// diffArtefact says where a (master) and b (replink) first differ.
func diffArtefact(a, b Artefact) string {
	if bytes.Equal(a.Data, b.Data) {
		return ""
	}
	if a.Text {
		return a.Name + ": " + diffLines(string(a.Data), string(b.Data))
	}
	i := 0
	for i < len(a.Data) && i < len(b.Data) && a.Data[i] == b.Data[i] {
		i++
	}
	d := fmt.Sprintf("%s: master %d bytes, replink %d; first difference at byte %d: master %s, replink %s",
		a.Name, len(a.Data), len(b.Data), i, excerpt(a.Data, i, 24), excerpt(b.Data, i, 24))
	if ma, ra := binlogEvents(a.Data), binlogEvents(b.Data); ma != nil && ra != nil {
		// A binlog file: name the events from the first that differs.
		k := 0
		for k < len(ma) && k < len(ra) && bytes.Equal(a.Data[ma[k].off:ma[k].end], b.Data[ra[k].off:ra[k].end]) {
			k++
		}
		d += fmt.Sprintf("\n    master events from there:  %s\n    replink events from there: %s",
			eventList(a.Data, ma[k:]), eventList(b.Data, ra[k:]))
	}
	return d
}

// rawEvent is where one event lies in a binlog file.
type rawEvent struct{ off, end int }

// binlogEvents splits a binlog file into events, nil when data is not
// one (no magic); a torn tail is left out.
func binlogEvents(data []byte) []rawEvent {
	if !bytes.HasPrefix(data, []byte("\xfebin")) {
		return nil
	}
	evs := []rawEvent{}
	for off := 4; off+19 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off+9:]))
		if n < 19 || off+n > len(data) {
			break
		}
		evs = append(evs, rawEvent{off, off + n})
		off += n
	}
	return evs
}

// eventList names up to five events: type@offset+length (end_log_pos).
func eventList(data []byte, evs []rawEvent) string {
	if len(evs) == 0 {
		return "(none)"
	}
	var parts []string
	for k, ev := range evs {
		if k == 5 {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(evs)-k))
			break
		}
		h := data[ev.off:]
		parts = append(parts, fmt.Sprintf("%s@%d+%d(end_log_pos %d, server id %d)", eventTypeName(h[4]), ev.off, ev.end-ev.off,
			binary.LittleEndian.Uint32(h[13:]), binary.LittleEndian.Uint32(h[5:])))
	}
	return strings.Join(parts, " ")
}

func eventTypeName(t byte) string {
	if name, ok := map[byte]string{2: "Query", 4: "Rotate", 15: "Format_desc", 16: "Xid", 19: "Table_map", 23: "Write_rows_v1",
		24: "Update_rows_v1", 25: "Delete_rows_v1", 27: "Heartbeat", 160: "Annotate_rows", 161: "Binlog_checkpoint",
		162: "Gtid", 163: "Gtid_list", 164: "Start_encryption"}[t]; ok {
		return name
	}
	return fmt.Sprintf("type%d", t)
}

// excerpt is up to n bytes of b from off, in hex.
func excerpt(b []byte, off, n int) string {
	if off >= len(b) {
		return "(end)"
	}
	end := min(off+n, len(b))
	s := fmt.Sprintf("% x", b[off:end])
	if end < len(b) {
		s += " ..."
	}
	return "[" + s + "]"
}

// diffLines lists where two texts differ, hunk by hunk (the first few):
// after each difference it looks for the next place where both agree
// again on a few lines. Long lines are cut.
func diffLines(a, b string) string {
	const maxHunks, maxLines = 6, 6
	al, bl := splitLines(a), splitLines(b)
	var s strings.Builder
	fmt.Fprintf(&s, "master %d lines, replink %d", len(al), len(bl))
	i, j := 0, 0
	for hunk := 0; ; hunk++ {
		for i < len(al) && j < len(bl) && al[i] == bl[j] {
			i, j = i+1, j+1
		}
		if i == len(al) && j == len(bl) {
			break
		}
		if hunk == maxHunks {
			s.WriteString("\n  ... and more")
			break
		}
		ni, nj := resync(al, bl, i, j)
		fmt.Fprintf(&s, "\n  at master line %d, replink line %d:", i+1, j+1)
		if i > 0 {
			fmt.Fprintf(&s, "\n      %s", cut(al[i-1]))
		}
		writeSide(&s, "-", al[i:ni], maxLines, "master")
		writeSide(&s, "+", bl[j:nj], maxLines, "replink")
		i, j = ni, nj
	}
	return s.String()
}

func writeSide(s *strings.Builder, mark string, lines []string, limit int, who string) {
	if len(lines) == 0 {
		fmt.Fprintf(s, "\n    %s (nothing from the %s)", mark, who)
	}
	for k, l := range lines {
		if k == limit {
			fmt.Fprintf(s, "\n    %s ... (%d lines in all)", mark, len(lines))
			break
		}
		fmt.Fprintf(s, "\n    %s %s", mark, cut(l))
	}
}

// resync finds the nearest al[ni:], bl[nj:] (ni >= i, nj >= j) that agree
// on a few lines or both end; the ends of both when none is near.
func resync(al, bl []string, i, j int) (int, int) {
	const window, agree = 400, 3
	for d := 1; d <= 2*window; d++ {
		for da := max(0, d-window); da <= min(d, window); da++ {
			if runsAgree(al, bl, i+da, j+d-da, agree) {
				return i + da, j + d - da
			}
		}
	}
	return len(al), len(bl)
}

// runsAgree: al from i and bl from j hold the same n lines, or the same
// lines to their common end.
func runsAgree(al, bl []string, i, j, n int) bool {
	if i > len(al) || j > len(bl) {
		return false
	}
	k := 0
	for ; k < n && i+k < len(al) && j+k < len(bl); k++ {
		if al[i+k] != bl[j+k] {
			return false
		}
	}
	return k == n || i+k == len(al) && j+k == len(bl)
}

func cut(s string) string {
	if !utf8.ValidString(s) {
		s = strconv.Quote(s)
	}
	if len(s) > 160 {
		return s[:160] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// stdoutArtefacts compares stdout and stderr as text, as they are.
func stdoutArtefacts(o ClientOutput) []Artefact {
	return []Artefact{{Name: "stdout", Data: o.Stdout, Text: true}, {Name: "stderr", Data: o.Stderr, Text: true}}
}

// RawFileArtefacts compares every file the client wrote byte for byte,
// but for the server id (and the CRC32 over it) of artificial events a
// client wrote into a binlog file, and its stderr as text (with the
// endpoint's address taken out).
func RawFileArtefacts(o ClientOutput) []Artefact {
	var out []Artefact
	for _, name := range sortedNames(o.Files) {
		out = append(out, Artefact{Name: fmt.Sprintf("file %q", name), Data: normalizeRawArtificial(o.Files[name])})
	}
	return append(out, Artefact{Name: "stderr", Data: normalizeAddr(o.Stderr, o.Endpoint), Text: true})
}

// MariadbBinlogTextArtefacts compares mariadb-binlog's text output with
// the server id of artificial events (and the CRC32 computed over it)
// taken out: the only difference the spec allows. "# at" positions and
// everything else must be equal.
func MariadbBinlogTextArtefacts(o ClientOutput) []Artefact {
	return []Artefact{
		{Name: "stdout", Data: normalizeArtificial(o.Stdout), Text: true},
		{Name: "stderr", Data: normalizeAddr(o.Stderr, o.Endpoint), Text: true},
	}
}

// normalizeRawArtificial masks the server id and the CRC32 trailer of the
// artificial events (timestamp 0, LOG_EVENT_ARTIFICIAL_F) in a binlog
// file, such as the GTID_LIST a server sends where a GTID dump reaches
// the client's position: the one difference the spec allows.
func normalizeRawArtificial(data []byte) []byte {
	evs := binlogEvents(data)
	if evs == nil {
		return data
	}
	out := bytes.Clone(data)
	for _, e := range evs {
		ev := out[e.off:e.end]
		if binary.LittleEndian.Uint32(ev) == 0 && binary.LittleEndian.Uint16(ev[17:])&0x20 != 0 {
			copy(ev[5:9], "\x00\x00\x00\x00")
			if len(ev) >= 23 {
				copy(ev[len(ev)-4:], "\x00\x00\x00\x00")
			}
		}
	}
	return out
}

// eventHeader is mariadb-binlog's comment line opening each event:
// "#700101  0:00:00 server id 1  end_log_pos 0 CRC32 0x2c3a1b7e 	Rotate to ...".
var eventHeader = regexp.MustCompile(`^#(\d{6} +\d+:\d\d:\d\d) server id (\d+)( +end_log_pos \d+)( CRC32 0x[0-9a-f]{8})?(.*)$`)

// artificialEvent: the types of the events a server makes up rather
// than reads from its binlog (fake ROTATE at the start of a dump and at
// file switches, GTID_LIST at the start of a GTID dump).
var artificialEvent = regexp.MustCompile(`^\s*(Rotate to|Gtid list)`)

// epochStamp is how mariadb-binlog prints timestamp 0, which artificial
// events carry: in the local time zone, as the client (libc) sees it.
func epochStamp() string {
	e := time.Unix(0, 0)
	return fmt.Sprintf("%02d%02d%02d %2d:%02d:%02d", e.Year()%100, int(e.Month()), e.Day(), e.Hour(), e.Minute(), e.Second())
}

// normalizeArtificial rewrites the header line of each artificial event
// (a Rotate or Gtid list with timestamp 0) to a fixed server id and no
// CRC32 value (it covers the server id), so the master's and replink's
// compare equal; end_log_pos and the rest stay. Events from the binlog,
// and any other event, keep their server id.
func normalizeArtificial(text []byte) []byte {
	epoch := epochStamp()
	lines := strings.Split(string(text), "\n")
	for i, l := range lines {
		if len(l) < 2 || l[0] != '#' || l[1] < '0' || l[1] > '9' {
			continue // not an event header: most lines are row images (and slow to match under -race)
		}
		m := eventHeader.FindStringSubmatch(l)
		if m == nil || m[1] != epoch || !artificialEvent.MatchString(m[5]) {
			continue
		}
		crc := m[4]
		if crc != "" {
			crc = " CRC32 0x........"
		}
		lines[i] = "#" + m[1] + " server id <artificial>" + m[3] + crc + m[5]
	}
	return []byte(strings.Join(lines, "\n"))
}

// normalizeAddr takes the endpoint's port out of a client's messages.
func normalizeAddr(b []byte, e ClientEndpoint) []byte {
	s := strings.ReplaceAll(string(b), fmt.Sprintf("%s:%d", e.Host, e.Port), "<host>:<port>")
	s = strings.ReplaceAll(s, fmt.Sprintf("'%s' (%d)", e.Host, e.Port), "'<host>' (<port>)")
	return []byte(s)
}
