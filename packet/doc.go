// Package packet frames MySQL protocol messages: it splits a message into
// numbered packets of at most 16 MB and joins them again, bounded in size.
package packet
