package status

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/tlsutil"
)

// httpClient is a keep-alive client speaking HTTP/1.1 on a connection of
// its own, as a scraper or a probe does.
type httpClient struct {
	net.Conn
	r *bufio.Reader
}

// serveLimited serves h with lim on loopback until the test ends; dial
// connects to it (over TLS when tlsOn).
func serveLimited(t *testing.T, lim Limits, h http.Handler, tlsOn bool) (dial func() *httpClient) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	webConfig, clientTLS := "", (*tls.Config)(nil)
	if tlsOn {
		dir := t.TempDir()
		set, err := tlsutil.MakeCertSet(dir, []string{"127.0.0.1"}, 30, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		webConfig = filepath.Join(dir, "web.yml")
		if err := os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\n", set.ServerCert, set.ServerKey), 0o600); err != nil {
			t.Fatal(err)
		}
		ca, err := os.ReadFile(set.CA)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		clientTLS = &tls.Config{RootCAs: pool}
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, webConfig, lim, h, hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return func() *httpClient {
		t.Helper()
		var c net.Conn
		var err error
		if clientTLS != nil {
			c, err = tls.Dial("tcp", ln.Addr().String(), clientTLS)
		} else {
			c, err = net.Dial("tcp", ln.Addr().String())
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &httpClient{Conn: c, r: bufio.NewReader(c)}
	}
}

func (c *httpClient) send(t *testing.T, path string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: replink\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
}

// response reads the answer to the request sent, waiting at most wait.
func (c *httpClient) response(wait time.Duration) (int, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

func (c *httpClient) get(t *testing.T, path string) {
	t.Helper()
	c.send(t, path)
	if code, err := c.response(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v", path, code, err)
	}
}

// closedByServer reports whether the server closed the connection within
// wait (it is kept alive otherwise).
func (c *httpClient) closedByServer(wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
}

func TestIdleKeepAlivesAreClosed(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			dial := serveLimited(t, Limits{MaxConns: 64, IdleTimeout: 200 * time.Millisecond}, okHandler(), tlsOn)
			var clients []*httpClient
			for range 20 {
				c := dial()
				c.get(t, "/healthz")
				clients = append(clients, c)
			}
			for i, c := range clients {
				if !c.closedByServer(5 * time.Second) {
					t.Fatalf("idle keep-alive connection %d still open 5s after its request (idle timeout 200ms)", i)
				}
			}
		})
	}
}

func TestConnectionCapWaitsForARequestToEnd(t *testing.T) {
	const conns = 4
	entered, release := make(chan struct{}, conns+1), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/block", func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprintln(w, "done")
	})
	mux.Handle("/metrics", okHandler())
	dial := serveLimited(t, Limits{MaxConns: conns, IdleTimeout: time.Minute}, mux, false)
	t.Cleanup(func() { close(release) })

	var busy []*httpClient
	for range conns {
		c := dial()
		c.send(t, "/block")
		busy = append(busy, c)
		<-entered
	}
	scrape := dial()
	scrape.send(t, "/metrics")
	if code, err := scrape.response(300 * time.Millisecond); err == nil {
		t.Fatalf("connection %d served (%d) while %d requests held every connection", conns+1, code, conns)
	}
	// One request ends: its connection, now idle, makes room.
	release <- struct{}{}
	if code, err := busy[0].response(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("blocked request: %d %v", code, err)
	}
	if code, err := scrape.response(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("scrape once a request ended: %d %v, want 200", code, err)
	}
	if !busy[0].closedByServer(5 * time.Second) {
		t.Error("the connection whose request ended was kept open at the cap")
	}
}

func TestIdleKeepAlivesMakeRoomForAScrape(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			const conns = 4
			// The idle timeout would keep the scrape out for a minute.
			dial := serveLimited(t, Limits{MaxConns: conns, IdleTimeout: time.Minute}, okHandler(), tlsOn)
			var idle []*httpClient
			for range conns {
				c := dial()
				c.get(t, "/healthz")
				idle = append(idle, c)
			}
			dial().get(t, "/metrics")
			closed := make(chan bool, conns)
			for _, c := range idle {
				go func() { closed <- c.closedByServer(500 * time.Millisecond) }()
			}
			n := 0
			for range conns {
				if <-closed {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d of %d idle connections closed for the scrape, want 1", n, conns)
			}
		})
	}
}

func TestLimitsFor(t *testing.T) {
	for _, c := range []struct {
		nofile uint64
		conns  int
	}{
		{0, 64}, {1 << 20, 64}, {1024, 64}, {512, 64}, {256, 32}, {128, 16}, {16, 4}, {0xffffffffffffffff, 64},
	} {
		l := LimitsFor(c.nofile)
		if l.MaxConns != c.conns {
			t.Errorf("LimitsFor(%d): %d connections, want %d", c.nofile, l.MaxConns, c.conns)
		}
		if l.IdleTimeout <= 30*time.Second || l.IdleTimeout >= time.Minute || l.ReadHeaderTimeout <= 0 || l.ReadTimeout <= 0 ||
			l.WriteTimeout < 30*time.Second {
			t.Errorf("LimitsFor(%d): %+v", c.nofile, l)
		}
	}
	if l := (Limits{MaxConns: 3}).orDefaults(); l.MaxConns != 3 || l.IdleTimeout != LimitsFor(0).IdleTimeout {
		t.Errorf("a zero field does not take its default: %+v", l)
	}
}
