// Command replink stands between a MySQL/MariaDB master and its slaves:
// it streams the binlog over TLS, keeps a durable relay log, and exports
// what on-call needs to see about the link.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
