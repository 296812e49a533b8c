package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Server is one mariadbd started by a test.
type Server struct {
	t       testing.TB
	Name    string
	Dir     string // holds datadir, my.cnf, socket, log
	DataDir string
	Port    int
	Socket  string
	ID      int
	cnf     string
	certDir string
	cmd     *exec.Cmd
	done    chan struct{}
}

// ServerOptions shape a server's my.cnf.
type ServerOptions struct {
	ServerID int
	// SSL files; all empty means --skip-ssl.
	CA, Cert, Key string
	// Extra lines for the [mariadbd] group.
	Extra []string
}

var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

// Available reports whether mariadbd and mariadb-install-db are installed.
func Available() error {
	for _, b := range []string{"mariadbd", "mariadb-install-db"} {
		if _, err := exec.LookPath(b); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + b); err2 != nil {
				return fmt.Errorf("%s not found: run scripts/setup.sh (make test does)", b)
			}
		}
	}
	return nil
}

func binPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return "/usr/sbin/" + name
}

// template installs a system datadir once per test binary; servers copy it.
func template() (string, error) {
	templateOnce.Do(func() {
		dir, err := os.MkdirTemp("", "replink-mariadb-template-")
		if err != nil {
			templateErr = err
			return
		}
		out, err := exec.Command(binPath("mariadb-install-db"), "--no-defaults", "--user="+currentUser(),
			"--datadir="+dir, "--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
		if err != nil {
			templateErr = fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
			return
		}
		templateDir = dir
	})
	return templateDir, templateErr
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartServer starts a mariadbd with binary logging on a free port. It is
// killed and its directory removed when the test ends.
func StartServer(t testing.TB, name string, o ServerOptions) *Server {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	tmpl, err := template()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "replink-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{t: t, Name: name, Dir: dir, DataDir: filepath.Join(dir, "data"),
		Socket: filepath.Join(dir, "mysqld.sock"), ID: o.ServerID, cnf: filepath.Join(dir, "my.cnf")}
	if s.ID == 0 {
		s.ID = 1
	}
	if out, err := exec.Command("cp", "-a", tmpl, s.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("copy datadir: %v %s", err, out)
	}
	s.Port = FreePort(t)
	lines := []string{
		"[mariadbd]",
		"datadir=" + s.DataDir,
		"socket=" + s.Socket,
		"pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"log-error=" + filepath.Join(dir, "error.log"),
		fmt.Sprintf("port=%d", s.Port),
		"bind-address=127.0.0.1",
		"user=" + currentUser(),
		fmt.Sprintf("server-id=%d", s.ID),
		"log-bin=mariadb-bin",
		"binlog_format=ROW",
		"skip-name-resolve",
		"innodb_buffer_pool_size=64M",
		"innodb_log_file_size=48M",
		"innodb_flush_log_at_trx_commit=2",
		"sync_binlog=0",
		"max_connections=200",
		"skip-log-error=0",
	}
	if o.Cert != "" {
		lines = append(lines, "ssl-ca="+o.CA, "ssl-cert="+o.Cert, "ssl-key="+o.Key)
	} else {
		lines = append(lines, "skip-ssl")
	}
	lines = append(lines, o.Extra...)
	if err := os.WriteFile(s.cnf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(binPath("mariadbd"), "--defaults-file="+s.cnf)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("%s: start mariadbd: %v", s.Name, err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := s.connect()
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
			s.t.Fatalf("%s: mariadbd exited at start:\n%s\n%s", s.Name, out.String(), tail(log, 3000))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: mariadbd not ready after 60s: %v", s.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (s *Server) connect() (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := net.Dialer{}
	return client.ConnectWithDialer(ctx, "unix", s.Socket, "root", "", "", d.DialContext)
}

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Exec runs statements as root over the Unix socket and fails the test on error.
func (s *Server) Exec(stmts ...string) {
	s.t.Helper()
	c, err := s.connect()
	if err != nil {
		s.t.Fatalf("%s: connect: %v", s.Name, err)
	}
	defer c.Close()
	for _, q := range stmts {
		if _, err := c.Execute(q); err != nil {
			s.t.Fatalf("%s: %s: %v", s.Name, q, err)
		}
	}
}

// Query runs one query as root and returns its rows as strings.
func (s *Server) Query(q string) [][]string {
	s.t.Helper()
	rows, err := s.TryQuery(q)
	if err != nil {
		s.t.Fatalf("%s: %s: %v", s.Name, q, err)
	}
	return rows
}

// TryQuery is Query returning the error.
func (s *Server) TryQuery(q string) ([][]string, error) {
	c, err := s.connect()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := c.Execute(q)
	if err != nil {
		return nil, err
	}
	return rowsOf(res), nil
}

func rowsOf(res *mysql.Result) [][]string {
	var out [][]string
	if res == nil || res.Resultset == nil {
		return nil
	}
	for i := range res.Values {
		var row []string
		for j := range res.Values[i] {
			v, _ := res.GetString(i, j)
			row = append(row, v)
		}
		out = append(out, row)
	}
	return out
}

// MasterStatus returns SHOW MASTER STATUS's file and position.
func (s *Server) MasterStatus() (string, uint32) {
	s.t.Helper()
	rows := s.Query("SHOW MASTER STATUS")
	if len(rows) == 0 {
		s.t.Fatalf("%s: SHOW MASTER STATUS is empty", s.Name)
	}
	var pos uint32
	fmt.Sscan(rows[0][1], &pos)
	return rows[0][0], pos
}

// Kill stops the server with SIGKILL and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart stops the server cleanly and starts it again.
func (s *Server) Restart() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.Kill()
	}
	s.start()
}

// ErrorLog returns the server's error log.
func (s *Server) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
	return string(b)
}

// RemoveTemplate deletes the shared system datadir (call from TestMain).
func RemoveTemplate() {
	if templateDir != "" {
		os.RemoveAll(templateDir)
	}
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

// SetupReplUsers creates the replication accounts tests use: repl (no
// REQUIRE) and replx (REQUIRE X509), password "replpass".
func (s *Server) SetupReplUsers() {
	s.Exec(
		"CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'replpass'",
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN ON *.* TO 'repl'@'%'",
		"CREATE USER IF NOT EXISTS 'replx'@'%' IDENTIFIED BY 'replpass' REQUIRE X509",
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN ON *.* TO 'replx'@'%'",
	)
}

// InstallCert replaces the server's certificate and key files and runs
// FLUSH SSL, so the next handshake presents them.
func (s *Server) InstallCert(cert, key string) {
	s.t.Helper()
	for src, dst := range map[string]string{cert: filepath.Join(s.certDir, "server-cert.pem"), key: filepath.Join(s.certDir, "server-key.pem")} {
		data, err := os.ReadFile(src)
		if err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	s.Exec("FLUSH SSL")
}

// StartSSLServer starts a server with the PKI's CA and server certificate
// (copied into its directory so InstallCert can swap them).
func StartSSLServer(t testing.TB, name string, p *PKI, id int, extra ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "server-key.pem")
	for src, dst := range map[string]string{p.ServerCert: cert, p.ServerKey: key} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := StartServer(t, name, ServerOptions{ServerID: id, CA: p.CAFile, Cert: cert, Key: key, Extra: extra})
	s.certDir = dir // InstallCert writes here
	return s
}

// SlaveStatus returns SHOW SLAVE STATUS as a column → value map.
func (s *Server) SlaveStatus() map[string]string {
	s.t.Helper()
	c, err := s.connect()
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Execute("SHOW SLAVE STATUS")
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]string{}
	if res.Resultset == nil || res.RowNumber() == 0 {
		return out
	}
	for i, f := range res.Fields {
		v, _ := res.GetString(0, i)
		out[string(f.Name)] = v
	}
	return out
}

// Checksum returns CHECKSUM TABLE's value for table.
func (s *Server) Checksum(table string) string {
	s.t.Helper()
	rows := s.Query("CHECKSUM TABLE " + table)
	return rows[0][1]
}

// Start starts a server that was killed, with the same data and port.
func (s *Server) Start() {
	s.t.Helper()
	s.start()
}
