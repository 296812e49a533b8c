package test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/diagnose"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// TestEncryptingMasterPlaintextRelayWarns: a master that encrypts its
// binlog files (encrypt_binlog with file_key_management) while replink's
// relay log does not gets one warning in the log, a flag in /status and a
// [warn] step in diagnose; a master that does not encrypt gets none.
func TestEncryptingMasterPlaintextRelayWarns(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte("# test key\n1;"+strings.Repeat("a1", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		extra   []string
		encrypt bool
	}{
		{"encrypting master", []string{"plugin_load_add=file_key_management", "file_key_management_filename=" + keys, "encrypt_binlog=ON"}, true},
		{"plain master", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, m := newMaster(t, c.extra...)
			if got := m.Query("SELECT @@encrypt_binlog")[0][0]; (got == "1") != c.encrypt {
				t.Fatalf("@@encrypt_binlog = %s on the %s", got, c.name)
			}
			m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)")
			r := StartReplink(t, p, m.Port, ReplinkOptions{})
			waitCaughtUp(t, m, r, 20*time.Second)
			warnings := strings.Count(r.Logs(), "the master encrypts its binlog files")
			flag := r.Replica.Status().PlaintextCopyOfEncrypted
			tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile})
			if err != nil {
				t.Fatal(err)
			}
			rep := diagnose.Run(context.Background(), replica.Config{Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: m.Port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second}, ServerID: 4001})
			var step *diagnose.Step
			for i, s := range rep.Steps {
				if s.Step == "binlog_encryption" {
					step = &rep.Steps[i]
				}
			}
			t.Logf("%s: %d warnings, /status flag %v, diagnose step %+v", c.name, warnings, flag, step)
			if c.encrypt && (warnings != 1 || !flag || step == nil || !step.Warning) {
				t.Fatalf("encrypting master, plaintext relay log: %d warnings (want 1), /status flag %v, diagnose step %+v (want a warning)", warnings, flag, step)
			}
			if !c.encrypt && (warnings != 0 || flag || step != nil) {
				t.Fatalf("plain master: %d warnings, /status flag %v, diagnose step %+v; want none", warnings, flag, step)
			}
		})
	}
}
