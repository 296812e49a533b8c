// Package binlog reads and writes binlog events and files: event framing,
// coordinates, transaction boundaries, and the relay log, a byte-for-byte
// mirror of the master's binlog files.
package binlog
