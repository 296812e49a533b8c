// Package binlog reads and writes binlog events and files: the event and
// its header layout, coordinates, transaction boundaries, and the relay
// log, a byte-for-byte mirror of the master's binlog files that owns its
// files and hands out readers that see only what is durable.
package binlog
