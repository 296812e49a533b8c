package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// zongjiDir holds the npm client @vlasky/zongji (package.json pinning
// it, its lock, and dump.js); scripts/setup.sh installs its
// node_modules, so a test run installs nothing.
const zongjiDir = "zongji"

// requireZongji returns the node binary and dump.js, and fails t (not
// skips) when either node or the installed client is missing.
func requireZongji(t *testing.T) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): run scripts/setup.sh, which installs Debian's nodejs and npm and then test/zongji's node_modules", err)
	}
	dir, err := filepath.Abs(zongjiDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@vlasky", "zongji", "package.json")); err != nil {
		t.Fatalf("@vlasky/zongji is not installed in %s/node_modules (%v): run scripts/setup.sh (npm ci --prefix test/zongji)", dir, err)
	}
	return node, filepath.Join(dir, "dump.js")
}

// zongjiDump builds a dump.js command reading from the endpoint over
// TLS verified against its CA; args choose the start (--file/--position
// or --gtid-set). dump.js stops by itself 2s after the last event (30s
// when none comes), before the harness's settle time would kill it.
func zongjiDump(node, script string, args ...string) func(e ClientEndpoint, outDir string) *exec.Cmd {
	return func(e ClientEndpoint, outDir string) *exec.Cmd {
		all := []string{script, "--host", e.Host, "--port", fmt.Sprint(e.Port), "--user", e.User, "--password", e.Password,
			"--ssl-ca", e.CAFile, "--idle-ms", "2000", "--first-ms", "30000"}
		cmd := exec.Command(node, append(all, args...)...)
		cmd.Dir = filepath.Dir(script)
		return cmd
	}
}

// ZongjiArtefacts compares dump.js's JSON lines (one per event) and its
// stderr as text. Only the server id of artificial events (timestamp 0)
// is taken out; zongji shows a header server id only on MariaDB GTID
// events, so in practice every field is compared.
func ZongjiArtefacts(o ClientOutput) []Artefact {
	return []Artefact{
		{Name: "stdout", Data: normalizeZongjiArtificial(o.Stdout), Text: true},
		{Name: "stderr", Data: o.Stderr, Text: true},
	}
}

// normalizeZongjiArtificial replaces the top-level "serverId" of every
// event line whose timestamp is 0 (an artificial event) with a fixed
// word; every other byte stays.
func normalizeZongjiArtificial(out []byte) []byte {
	lines := bytes.Split(out, []byte("\n"))
	for i, l := range lines {
		// dump.js prints type, then timestamp: skip decoding the others
		// (some are megabytes of row values).
		if head := l[:min(len(l), 64)]; !bytes.Contains(head, []byte(`"timestamp":0,`)) {
			continue
		}
		var ev struct {
			Timestamp *int64       `json:"timestamp"`
			ServerID  *json.Number `json:"serverId"`
		}
		if json.Unmarshal(l, &ev) != nil || ev.Timestamp == nil || *ev.Timestamp != 0 || ev.ServerID == nil {
			continue
		}
		lines[i] = bytes.Replace(l, []byte(`"serverId":`+ev.ServerID.String()), []byte(`"serverId":"<artificial>"`), 1)
	}
	return bytes.Join(lines, []byte("\n"))
}

// TestClientsZongji: the npm CDC client @vlasky/zongji (test/zongji)
// gets from replink what it gets from the master on the same binlog
// (SPEC "replink is a master to its clients"): the same events at the
// same positions, decoded to the same rows, and the same resume point.
// The master logs full row metadata (binlog_row_metadata=FULL), as
// zongji's README recommends, so zongji decodes rows from the stream and
// does not ask INFORMATION_SCHEMA over its control connection.
func TestClientsZongji(t *testing.T) {
	node, script := requireZongji(t)
	m, master, relay, _ := clientsStack(t, "binlog_row_metadata=FULL")

	const file1 = "mariadb-bin.000001"
	var gtids []string
	for _, ev := range showBinlogEvents(t, m, file1) {
		if ev.Type == "Gtid" {
			f := strings.Fields(ev.Info) // "BEGIN GTID 0-1-5" or "GTID 0-1-1"
			gtids = append(gtids, f[len(f)-1])
		}
	}
	if len(gtids) < 8 {
		t.Fatalf("%s has %d transactions, want at least 8", file1, len(gtids))
	}
	t.Logf("gtidSet start %s (streams the transactions after it)", gtids[3])

	for _, row := range []struct {
		name string
		args []string
	}{
		{"zongji from a file", []string{"--file", file1, "--position", "4"}},
		{"zongji from a gtidSet", []string{"--gtid-set", gtids[3]}},
	} {
		t.Run(row.name, func(t *testing.T) {
			CompareClients(t, ClientRun{Command: zongjiDump(node, script, row.args...), Collect: ZongjiArtefacts,
				Settle: 40 * time.Second, Timeout: 2 * time.Minute}, master, relay)
		})
	}
}

// TestClientsZongjiNormalizes: only the server id of an artificial
// event (timestamp 0) is taken out of zongji's lines.
func TestClientsZongjiNormalizes(t *testing.T) {
	in := `{"type":"MariadbGtidList","timestamp":0,"nextPosition":0,"serverId":4001,"gtids":[{"serverId":1}]}
{"type":"MariadbGtid","timestamp":1000,"nextPosition":0,"serverId":1}`
	want := `{"type":"MariadbGtidList","timestamp":0,"nextPosition":0,"serverId":"<artificial>","gtids":[{"serverId":1}]}
{"type":"MariadbGtid","timestamp":1000,"nextPosition":0,"serverId":1}`
	if got := string(normalizeZongjiArtificial([]byte(in))); got != want {
		t.Fatalf("normalised to\n%s\nwant\n%s", got, want)
	}
}
