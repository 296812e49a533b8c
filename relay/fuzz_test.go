package relay

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

func FuzzHandleQuery(f *testing.F) {
	for _, q := range []string{
		"SELECT UNIX_TIMESTAMP()", "SHOW VARIABLES LIKE 'SERVER_ID'", "SET @master_binlog_checksum= @@global.binlog_checksum",
		"SET @master_heartbeat_period = 1, @source_heartbeat_period = 1", "SELECT @@GLOBAL.SERVER_UUID",
		"SET @slave_connect_state='0-1-5,1-2-3'", "SELECT binlog_gtid_pos('a',4)", "SELECT 'x', \"y\", 1.5", "SET NAMES utf8",
		"SET @a = (1,(2", "SELECT ((((", "'", "SET @x='\\'", "",
	} {
		f.Add(q)
	}
	s := &Server{cfg: Config{ServerID: 1, ServerVersion: func() string { return "5.5.5-10.11" }}, log: hclog.NewNullLogger()}
	f.Fuzz(func(t *testing.T, q string) {
		ss := &session{s: s, vars: map[string]string{}}
		_, _ = ss.HandleQuery(q)
	})
}

func FuzzParseCommands(f *testing.F) {
	f.Add([]byte{4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'm', 'a', 'r', 'i', 'a', 'd', 'b', '-', 'b', 'i', 'n', '.', '0', '0', '0', '0', '0', '1'})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseDump(data)
		if err == nil && len(req.file) > len(data) {
			t.Fatal("file name longer than the packet")
		}
		ss := &session{vars: map[string]string{}}
		_ = ss.HandleOtherCommand(0x15, data) // COM_REGISTER_SLAVE
	})
}
