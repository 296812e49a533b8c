// Package test holds the integration harness: it starts real mariadbd
// masters and slaves in temporary directories on free loopback ports,
// with certificates it makes, and cleans them up. The integration tests
// of replink live beside it.
package test
