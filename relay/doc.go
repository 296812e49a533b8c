// Package relay is the server native slaves connect to: it speaks the
// MySQL protocol, authenticates slaves against GRANT-style accounts, and
// serves the relay log as a master would, reading it only through
// binlog.Log: no file paths or header offsets here, protocol only.
package relay
