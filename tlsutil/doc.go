// Package tlsutil turns the MySQL C API's TLS options into a crypto/tls
// configuration with the same meaning, names why a handshake failed, and
// keeps an inventory of the certificates replink uses and sees.
package tlsutil
