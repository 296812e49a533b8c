package relay

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
)

// HandleQuery answers what slaves, binlog clients and CDC tools ask a
// master before (and beside) a dump, from the relay log. Statements are
// parsed, not matched as strings: SET assigns any list of variables,
// SELECT evaluates a list of known expressions with their aliases, SHOW
// answers the variables and binlog listings a master has. Schema queries
// (SHOW FULL COLUMNS, information_schema) are not answered: a CDC tool's
// second connection for them belongs to the master.
func (ss *session) HandleQuery(q string) (*mysql.Result, error) {
	st := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(q), ";"))
	switch strings.ToUpper(firstWord(st)) {
	case "SET":
		dropped := 0
		for _, a := range splitTop(st[3:]) {
			name, val, ok := strings.Cut(a, "=")
			if !ok {
				continue // SET NAMES x and the like: nothing to keep
			}
			name = strings.ToLower(strings.TrimSpace(name))
			v, known := ss.eval(strings.TrimSpace(val))
			if !known {
				v = unquote(strings.TrimSpace(val))
			}
			if strings.HasPrefix(name, "@") && !strings.HasPrefix(name, "@@") && !ss.setVar(name, text(v)) {
				dropped++
			}
		}
		if dropped > 0 {
			ss.s.log.Warn("client's user variables pass 64 KiB; not kept", "peer", ss.peer, "variables", dropped, "bytes", len(q))
		}
		return nil, nil
	case "SELECT":
		return ss.selectList(q, st[6:])
	case "SHOW":
		return ss.show(q, st)
	case "KILL":
		return ss.kill(st)
	}
	ss.unknown(q)
	return nil, syntaxErr(q)
}

// maxVars bounds what a client's user variables may hold: a slave sets a
// handful of short ones.
const maxVars = 64 << 10

// setVar keeps a user variable, within maxVars for the connection, in
// constant work (the running total is kept); false when it was not kept.
func (ss *session) setVar(name, v string) bool {
	size := ss.varsSize + len(name) + len(v)
	if old, ok := ss.vars[name]; ok {
		size -= len(name) + len(old)
	}
	if size > maxVars {
		return false
	}
	ss.vars[name], ss.varsSize = v, size
	return true
}

// unknown logs a statement replink does not answer by its first word and
// length only: a statement may carry a password (IDENTIFIED BY, MASTER_PASSWORD).
func (ss *session) unknown(q string) {
	ss.s.log.Info("unknown statement from client", "peer", ss.peer, "statement", strings.ToUpper(firstWord(strings.TrimSpace(q))), "bytes", len(q))
}

// selectList evaluates SELECT expr [[AS] alias], ... as one row.
func (ss *session) selectList(q, list string) (*mysql.Result, error) {
	var names []string
	var row []any
	for _, item := range splitTop(list) {
		expr, name := splitAlias(strings.TrimSpace(item))
		v, ok := ss.eval(expr)
		if !ok && name == "" {
			// "expr alias" without AS: the last word may be the alias.
			if i := strings.LastIndexAny(expr, " \t\n"); i > 0 && isIdent(strings.TrimSpace(expr[i:])) {
				if v, ok = ss.eval(strings.TrimSpace(expr[:i])); ok {
					expr, name = strings.TrimSpace(expr[:i]), unquoteIdent(strings.TrimSpace(expr[i:]))
				}
			}
		}
		if !ok {
			ss.unknown(q)
			if name, isVar := strings.CutPrefix(strings.TrimSpace(expr), "@@"); isVar {
				// As a master says it (a MySQL replica reads this error
				// as "no semi-sync here", for one).
				for _, scope := range []string{"global.", "session."} {
					if len(name) > len(scope) && strings.EqualFold(name[:len(scope)], scope) {
						name = name[len(scope):]
					}
				}
				return nil, mysql.NewDefaultError(mysql.ER_UNKNOWN_SYSTEM_VARIABLE, name) // as written
			}
			return nil, mysql.NewError(mysql.ER_UNKNOWN_SYSTEM_VARIABLE, fmt.Sprintf("Unknown system variable or function in '%s'", expr))
		}
		if name == "" {
			name = expr // a master names the column by the expression as written
		}
		names = append(names, name)
		row = append(row, v)
	}
	return resultset(names, [][]any{row})
}

// splitAlias splits "expr AS alias" at a top-level AS.
func splitAlias(item string) (expr, alias string) {
	up := asciiUpper(item)
	expr = item
	topLevel(item, func(i int) bool {
		if i > 0 && strings.HasPrefix(up[i:], "AS") && isSpace(item[i-1]) && i+2 < len(item) && isSpace(item[i+2]) {
			expr, alias = strings.TrimSpace(item[:i]), unquoteIdent(strings.TrimSpace(item[i+2:]))
			return true
		}
		return false
	})
	return expr, alias
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

var identRE = regexp.MustCompile("^([A-Za-z_][A-Za-z0-9_$]*|`[^`]+`)$")

func isIdent(s string) bool { return identRE.MatchString(s) }

func unquoteIdent(s string) string {
	if len(s) >= 2 && (s[0] == '`' || s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// eval evaluates one SELECT expression: a string, an int64 or nil (NULL).
func (ss *session) eval(e string) (any, bool) {
	l := strings.ToLower(strings.TrimSpace(e))
	switch {
	case l == "unix_timestamp()":
		return time.Now().Unix(), true
	case l == "version()":
		return ss.s.version(), true
	case l == "database()":
		return nil, true
	case strings.HasPrefix(l, "binlog_gtid_pos("):
		return nil, true
	case strings.HasPrefix(l, "@@"):
		name := strings.TrimPrefix(l, "@@")
		name = strings.TrimPrefix(strings.TrimPrefix(name, "global."), "session.")
		return ss.variable(name)
	case strings.HasPrefix(l, "@"):
		if v, ok := ss.vars[l]; ok && v != nullValue {
			return userString(v), true
		}
		return nil, true
	case l == "null":
		return nil, true
	case isQuoted(strings.TrimSpace(e)):
		return unquote(strings.TrimSpace(e)), true
	}
	if n, err := strconv.ParseInt(l, 10, 64); err == nil {
		if int64(int32(n)) == n {
			return int32(n), true // an INT literal, as a master types it
		}
		return n, true
	}
	if _, err := strconv.ParseFloat(l, 64); err == nil {
		return l, true
	}
	return nil, false
}

// userString is a user variable's string value: a master types such a
// column LONGBLOB, where a string literal is VARCHAR.
type userString string

// nullValue stands for NULL among the user variables a client set.
const nullValue = "\x00NULL"

// text is a value as a user variable keeps it.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return nullValue
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// variable answers the server variables clients ask about.
func (ss *session) variable(name string) (any, bool) {
	for _, v := range ss.s.variables() {
		if v.name == strings.ToLower(name) {
			return v.value(), true
		}
	}
	return nil, false
}

// serverVar is one variable replink answers; listed ones appear in SHOW
// VARIABLES as on the master. server_uuid is answered by name only with
// a MariaDB master (which has none): it is replink's own, stable per
// data-dir, which MySQL replicas and tools that tell servers apart need.
type serverVar struct {
	name   string
	listed bool
	value  func() any
}

func (s *Server) variables() []serverVar {
	str := func(v string) func() any { return func() any { return v } }
	vars := []serverVar{
		{"binlog_checksum", true, func() any { return s.binlogChecksum() }},
		{"binlog_format", true, str("ROW")},
		{"log_bin", true, str("ON")},
		{"server_id", true, func() any { return int64(s.cfg.ServerID) }},
		{"version", true, func() any { return s.version() }},
	}
	if s.mysqlSource() {
		executed := func(purged bool) func() any {
			return func() any {
				e, p, _, err := s.mysqlExecuted()
				switch {
				case err != nil:
					return ""
				case purged:
					return p.String()
				}
				return e.String()
			}
		}
		return append(vars,
			serverVar{"gtid_executed", true, executed(false)},
			serverVar{"gtid_mode", true, func() any { return s.gtidMode() }},
			serverVar{"gtid_purged", true, executed(true)},
			serverVar{"server_uuid", true, func() any { return s.rlog.ServerUUID() }})
	}
	return append(vars,
		serverVar{"gtid_binlog_pos", true, func() any { return s.gtidPos(false) }},
		serverVar{"gtid_binlog_state", true, func() any { return s.gtidPos(true) }},
		serverVar{"gtid_current_pos", true, func() any { return s.gtidCurrentPos() }},
		serverVar{"gtid_domain_id", true, func() any { return int64(0) }},
		serverVar{"gtid_slave_pos", true, str("")},
		serverVar{"gtid_strict_mode", true, str("OFF")},
		serverVar{"server_uuid", false, func() any { return s.rlog.ServerUUID() }})
}

// version is the master's version as VERSION() says it: without the
// "5.5.5-" a MariaDB greeting puts ahead of it for old clients.
func (s *Server) version() string {
	return strings.TrimPrefix(s.cfg.ServerVersion(), "5.5.5-")
}

// gtidPos is @@gtid_binlog_pos (the last GTID of each domain), or with
// state @@gtid_binlog_state (the last of each server in each domain), of
// the durable relay log.
func (s *Server) gtidPos(state bool) string {
	bs, _, err := s.binlogState()
	if err != nil {
		return ""
	}
	if state {
		return bs.String()
	}
	return bs.Pos().String()
}

// gtidCurrentPos is @@gtid_current_pos of the master: per domain, its
// binlog position where the master itself logged the last GTID (the
// rest would come from its slave position, which a replink does not have).
func (s *Server) gtidCurrentPos() string {
	bs, masterID, err := s.binlogState()
	if err != nil {
		return ""
	}
	pos := bs.Pos()
	for d, g := range pos {
		if g.Server != masterID {
			delete(pos, d)
		}
	}
	return pos.String()
}

// show answers SHOW [GLOBAL|SESSION] VARIABLES [LIKE 'pattern'], SHOW
// BINARY LOGS, SHOW MASTER STATUS (and BINLOG STATUS, BINARY LOG STATUS).
func (ss *session) show(q, st string) (*mysql.Result, error) {
	up := asciiUpper(st) // ASCII only: an index into up is one into st
	words := strings.Fields(up)
	switch {
	case len(words) >= 2 && (words[1] == "VARIABLES" || len(words) >= 3 && words[2] == "VARIABLES"):
		pattern := ""
		if i := strings.Index(up, " LIKE "); i >= 0 {
			pattern = strings.ToLower(unquote(strings.TrimSpace(st[i+6:])))
		}
		if len(pattern) > 256 { // no variable name is that long
			return resultset([]string{"Variable_name", "Value"}, nil)
		}
		like := likePattern(pattern) // compiled once for all the variables
		var rows [][]any
		for _, v := range ss.s.variables() {
			if pattern == "" && v.listed || pattern != "" && (v.listed || !strings.ContainsAny(pattern, "%_")) && like.MatchString(v.name) {
				rows = append(rows, []any{v.name, text(v.value())})
			}
		}
		return resultset([]string{"Variable_name", "Value"}, rows)
	case len(words) >= 2 && words[1] == "GRANTS":
		// What diagnose and tools check before they dump: every relay
		// account may do what a replication account may, no more.
		return resultset([]string{fmt.Sprintf("Grants for %s@%%", ss.user)},
			[][]any{{fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `%s`@`%%`", ss.user)}})
	case up == "SHOW SLAVE HOSTS" || up == "SHOW REPLICA HOSTS":
		var rows [][]any
		for _, h := range ss.s.slaveHosts() {
			rows = append(rows, []any{int64(h.serverID), h.reportHost, int64(h.reportPort), int64(ss.s.cfg.ServerID)})
		}
		return resultset([]string{"Server_id", "Host", "Port", "Master_id"}, rows)
	case up == "SHOW BINARY LOGS" || up == "SHOW MASTER LOGS":
		var rows [][]any
		for _, f := range ss.s.rlog.Files() {
			end, _, err := ss.s.rlog.Readable(f)
			if err != nil {
				continue
			}
			// By the master's names: after a failover, the old master's
			// files, then the new master's (docs/failover.md).
			rows = append(rows, []any{binlog.MasterName(f), end})
		}
		return resultset([]string{"Log_name", "File_size"}, rows)
	case up == "SHOW MASTER STATUS" || up == "SHOW BINLOG STATUS" || up == "SHOW BINARY LOG STATUS":
		cols := []string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"}
		d := ss.s.rlog.Durable()
		row := []any{binlog.MasterName(d.File), int64(d.Offset), "", ""}
		if ss.s.mysqlSource() {
			cols = append(cols, "Executed_Gtid_Set") // as MySQL 5.6 and later
			e, _, _, err := ss.s.mysqlExecuted()
			if err != nil {
				return nil, mysql.NewError(mysql.ER_UNKNOWN_ERROR, fmt.Sprintf("replink: reading the relay log: %v", err))
			}
			row = append(row, e.String())
		}
		if d.IsZero() {
			return resultset(cols, nil)
		}
		return resultset(cols, [][]any{row})
	}
	ss.unknown(q)
	return nil, syntaxErr(q)
}

// likePattern is SQL LIKE as a regular expression, case-insensitive: %
// any run, _ one character, \ escapes.
func likePattern(pattern string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString("(?is)^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '%':
			re.WriteString(".*")
		case '_':
			re.WriteString(".")
		case '\\':
			if i+1 < len(pattern) {
				i++
				re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			}
		default:
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	re.WriteString("$")
	if r, err := regexp.Compile(re.String()); err == nil {
		return r
	}
	return regexp.MustCompile("$^") // a pattern that is not text matches nothing
}

// kill answers KILL [CONNECTION|QUERY] id: a dump of this relay is ended
// (its connection closed); any other id is unknown, as on a master.
func (ss *session) kill(st string) (*mysql.Result, error) {
	f := strings.Fields(st)
	arg := f[len(f)-1]
	id, err := strconv.ParseUint(arg, 10, 32)
	if err != nil || len(f) < 2 {
		return nil, syntaxErr(st)
	}
	if ss.s.kill(uint32(id), ss.user) {
		return nil, nil
	}
	return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d", id))
}

// isQuoted reports one string literal: quoted at both ends, no unescaped
// quote of its kind inside.
func isQuoted(s string) bool {
	if len(s) < 2 || s[0] != '\'' && s[0] != '"' || s[len(s)-1] != s[0] {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		switch s[i] {
		case '\\':
			i++
		case s[0]:
			return false
		}
	}
	return true
}

// resultset builds a text result set; column types follow the values as
// a MariaDB master types them: int32 is INT, int64 BIGINT, a string
// VARCHAR, and a column of NULLs (a user variable never set) LONGBLOB.
// The rows are encoded here: go-mysql's encoder sends an empty string as
// NULL, where a master sends an empty string (SHOW MASTER STATUS's
// Binlog_Do_DB, an empty @@gtid_slave_pos).
func resultset(names []string, rows [][]any) (*mysql.Result, error) {
	blobs := map[int]bool{}
	for _, row := range rows {
		for j, v := range row {
			if u, ok := v.(userString); ok {
				row[j], blobs[j] = string(u), true
			}
		}
	}
	rs, err := mysql.BuildSimpleTextResultset(names, rows)
	if err != nil {
		return nil, err
	}
	for i, row := range rows {
		var data []byte
		for _, v := range row {
			if v == nil {
				data = append(data, 0xfb)
				continue
			}
			b, err := mysql.FormatTextValue(v)
			if err != nil {
				return nil, err
			}
			data = append(data, mysql.PutLengthEncodedString(b)...)
		}
		rs.RowDatas[i] = data
	}
	for j, f := range rs.Fields {
		switch {
		case len(rows) > 0 && isInt32(rows[0][j]):
			f.Type = mysql.MYSQL_TYPE_LONG
		case f.Type == mysql.MYSQL_TYPE_NULL || blobs[j]:
			f.Type = mysql.MYSQL_TYPE_LONG_BLOB
		}
	}
	return mysql.NewResult(rs), nil
}

func isInt32(v any) bool {
	_, ok := v.(int32)
	return ok
}
