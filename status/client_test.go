package status

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/replica"
)

// TestFetchSaysWhatWentWrong: answers that are not a /status document get
// an error naming what came back and what to give instead, never a JSON
// decoder's "invalid character".
func TestFetchSaysWhatWentWrong(t *testing.T) {
	for _, c := range []struct {
		name    string
		tls     bool   // the listener speaks HTTPS
		mode    string // --ssl-mode
		handler http.HandlerFunc
		want    string
	}{
		{"a page, not JSON", false, "", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>hello</html>"))
		}, `not replink's /status (Content-Type "text/html"`},
		{"JSON that is not /status", false, "", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"status":"success"}`))
		}, "no master state"},
		{"basic auth wanted", false, "", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		}, "give --user and --password-file"},
		{"HTTPS to a plain listener", false, "REQUIRED", func(w http.ResponseWriter, _ *http.Request) {}, "the listener speaks plain HTTP"},
		{"HTTP to an HTTPS listener", true, "DISABLED", func(w http.ResponseWriter, _ *http.Request) {}, "the listener speaks HTTPS"},
		{"another error", false, "", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no such page", http.StatusNotFound)
		}, "HTTP 404: no such page"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(c.handler)
			if c.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			_, _, err := Fetch(context.Background(), ClientOptions{Addr: srv.Listener.Addr().String(), SSLMode: c.mode, Timeout: 5 * time.Second})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "invalid character") {
				t.Fatalf("Fetch: %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestReady(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		st   replica.Status
		ok   bool
		want string
	}{
		{replica.Status{State: "streaming", Master: "db1:3306", Since: now.Add(-time.Hour)}, true, "streaming from db1:3306 since 2026-01-01T11:00:00Z"},
		{replica.Status{State: "backoff", Master: "db1:3306", Since: now.Add(-12 * time.Second), LastReason: "connection_refused", LastError: "dial tcp: connection refused"},
			false, "not streaming from db1:3306: backoff for 12s (reason connection_refused: dial tcp: connection refused)"},
		{replica.Status{State: "connecting", Master: "db1:3306", Since: now}, false, "not streaming from db1:3306: connecting for 0s"},
		{replica.Status{State: "unattached", Master: "db1:3306", Since: now.Add(-time.Minute), LastReason: "diverged", LastError: "db2 lacks 0-1-30"},
			false, "not streaming from db1:3306: unattached for 1m0s (reason diverged: db2 lacks 0-1-30)"},
	} {
		ok, why := Ready(c.st, now)
		if ok != c.ok || why != c.want {
			t.Errorf("Ready(%s) = %v, %q; want %v, %q", c.st.State, ok, why, c.ok, c.want)
		}
	}
}
