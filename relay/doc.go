// Package relay is the server native slaves connect to: it speaks the
// MySQL protocol, authenticates slaves against GRANT-style accounts, and
// serves the durable part of the relay log as a master would.
package relay
