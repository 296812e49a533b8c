// Package replica connects to the master as a replica over TLS and streams
// its binlog, raw and unchanged, into a Sink (the relay log), resuming at
// the last complete transaction after any failure or stall.
package replica
