package relay

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// session is one logged-in client: a slave, a binlog client, a tool.
type session struct {
	s    *Server
	peer string
	user string
	conn *conn
	tls  *tls.ConnectionState
	vars map[string]string // user variables the slave set (@name, lower case)
	// varsSize is the bytes of vars' names and values.
	varsSize int
	done     <-chan struct{}

	serverID uint32
	// reportHost, reportPort: what COM_REGISTER_SLAVE said, for SHOW SLAVE HOSTS.
	reportHost string
	reportPort uint16
	// streamed: a dump started; the connection ends with it.
	streamed bool
	// nonBlocking: the dump ends at the end of the relay log (a tool,
	// not a slave: it is not remembered).
	nonBlocking bool
	mu          sync.Mutex
	from        string    // the file the dump started in (what its request needed)
	dumpStart   time.Time // when the dump started
	curFile     string    // the relay file being served
	curPos      uint32    // the end of what was sent
	gtid        bool
}

func (ss *session) status() SlaveStatus {
	ss.mu.Lock()
	file, pos := ss.curFile, ss.curPos
	st := SlaveStatus{ServerID: ss.serverID, Peer: ss.peer, User: ss.user, Position: fmt.Sprintf("%s:%d", binlog.MasterName(file), pos), GTID: ss.gtid}
	ss.mu.Unlock()
	st.LagBytes = ss.s.rlog.BytesAfter(binlog.Pos{File: file, Offset: pos})
	if ss.tls != nil {
		st.TLS = tlsutil.VersionName(ss.tls.Version) + " " + tlsutil.CipherName(ss.tls.CipherSuite)
	}
	return st
}

func (ss *session) file() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.curFile
}

// command answers one command; quit says the connection is over (the
// client quit, or a dump ended).
func (ss *session) command(p []byte) (quit bool) {
	c := ss.conn
	if len(p) == 0 {
		// An empty packet is COM_SLEEP to a master: an unknown command.
		return c.writeErr(mysql.NewDefaultError(mysql.ER_UNKNOWN_COM_ERROR)) != nil
	}
	var err error
	switch p[0] {
	case comQuit:
		return true
	case mysql.COM_PING, mysql.COM_INIT_DB:
		return c.writeOK() != nil
	case mysql.COM_QUERY:
		var r *mysql.Result
		if r, err = ss.HandleQuery(string(p[1:])); err == nil {
			return c.writeResult(r) != nil
		}
	case mysql.COM_BINLOG_DUMP, mysql.COM_BINLOG_DUMP_GTID:
		var req dumpRequest
		var perr error
		switch {
		case p[0] == mysql.COM_BINLOG_DUMP:
			req, perr = parseDump(p[1:])
		case ss.s.mysqlSource():
			req, perr = parseDumpGTID(p[1:])
		default:
			// MySQL's GTID dump, which a MariaDB master does not know: an
			// unknown command, in the master's words.
			ss.s.log.Info("unknown command from client", "peer", ss.peer, "command", p[0])
			perr = mysql.NewDefaultError(mysql.ER_UNKNOWN_COM_ERROR)
		}
		if perr != nil {
			err = perr
			break
		}
		// A dump ends the connection: the slave went away, replink
		// stops, or it was refused (ERR 1236) once it had started.
		if err = ss.dump(req); ss.streamed {
			return true
		}
		if err == nil {
			return false // a non-blocking dump ended with its EOF
		}
	default:
		if err = ss.HandleOtherCommand(p[0], p[1:]); err == nil {
			return c.writeOK() != nil
		}
	}
	return c.writeErr(err) != nil
}

// HandleOtherCommand takes the replication commands; go-mysql's own
// replication path would decode and re-encode events, we send them raw.
func (ss *session) HandleOtherCommand(cmd byte, data []byte) error {
	switch cmd {
	case mysql.COM_REGISTER_SLAVE:
		if len(data) < 4 {
			return mysql.ErrMalformPacket
		}
		ss.serverID = binary.LittleEndian.Uint32(data)
		// Then the host it reports (report_host), user and password (not
		// kept), and port (report_port), for SHOW SLAVE HOSTS; a slave
		// that sends less is still taken, with what it sent whole.
		rest := data[4:]
		field := func() (string, bool) {
			// Lengths are taken as ints: 1+255 in a byte is 0.
			if len(rest) == 0 || 1+int(rest[0]) > len(rest) {
				return "", false
			}
			n := 1 + int(rest[0])
			f := string(rest[1:n])
			rest = rest[n:]
			return f, true
		}
		host, ok := field()
		if !ok {
			return nil
		}
		ss.reportHost = host
		if _, ok := field(); !ok { // user
			return nil
		}
		if _, ok := field(); !ok { // password
			return nil
		}
		if len(rest) >= 2 {
			ss.reportPort = binary.LittleEndian.Uint16(rest)
		}
		return nil
	}
	// Anything else is an unknown command, in the master's words.
	ss.s.log.Info("unknown command from client", "peer", ss.peer, "command", cmd)
	return mysql.NewDefaultError(mysql.ER_UNKNOWN_COM_ERROR)
}

// dumpRequest is a COM_BINLOG_DUMP, or a MySQL replica's
// COM_BINLOG_DUMP_GTID with the GTID set it has executed.
type dumpRequest struct {
	pos        uint32
	flags      uint16
	serverID   uint32
	file       string
	mysqlGTIDs *mysql.MysqlGTIDSet
}

func parseDump(data []byte) (dumpRequest, error) {
	if len(data) < 10 {
		return dumpRequest{}, mysql.ErrMalformPacket
	}
	return dumpRequest{pos: binary.LittleEndian.Uint32(data), flags: binary.LittleEndian.Uint16(data[4:]),
		serverID: binary.LittleEndian.Uint32(data[6:]), file: strings.TrimRight(string(data[10:]), "\x00")}, nil
}

// asciiUpper upper-cases ASCII letters only, keeping every byte where it is.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\n\r@("); i >= 0 {
		return s[:i]
	}
	return s
}

// splitTop splits on commas outside quotes and parentheses.
func splitTop(s string) []string {
	var out []string
	start := 0
	topLevel(s, func(i int) bool {
		if s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
		return false
	})
	return append(out, s[start:])
}

// topLevel calls f with each index of s outside quotes (', ", `, with
// backslash escapes) and parentheses, until f returns true.
func topLevel(s string, f func(i int) bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0:
			if f(i) {
				return
			}
		}
	}
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

func syntaxErr(q string) error {
	if len(q) > 80 {
		q = q[:80]
	}
	return mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("replink does not support this statement: %s", q))
}
