package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/replink/replink/config"
	"github.com/replink/replink/diagnose"
	"github.com/replink/replink/status"
	"github.com/replink/replink/tlsutil"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: replink <command> [flags]

commands:
  run -c FILE        the daemon: master -> relay log -> slaves, with metrics
  diagnose [flags]   probe the master once, step by step (--json for JSON)
  certs --out DIR    make a CA, a server and a client certificate
  status [-c FILE]   print a running daemon's /status; exit 1 unless it streams and stores
  binlog cat FILE... relay files as plaintext binlog on stdout (decrypted)
  version            print version, commit and Go version
`

// Run runs one command and returns the exit status: 0 ok, 1 runtime
// failure, 2 bad usage or configuration.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "diagnose":
		var ok bool
		ok, err = cmdDiagnose(ctx, args[1:], stdout, stderr)
		if err == nil && !ok {
			return 1
		}
	case "certs":
		err = cmdCerts(args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args[1:], stdout, stderr)
	case "binlog":
		err = cmdBinlog(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "replink %s (commit %s, %s)\n", version, commit(), runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "replink: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "replink %s: %v\n", args[0], err)
	var ce *config.Error
	if errors.As(err, &ce) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

var errUsage = errors.New("bad usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// newFlagSet makes a command's flag set. It prints nothing while parsing:
// parseFlags decides where the usage goes.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: replink %s [flags]\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses a command's flags. -h and --help are not an error:
// the usage goes to stdout and flag.ErrHelp comes back, which Run turns
// into exit 0. Any other flag error prints the usage on stderr and is a
// usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	default:
		fs.SetOutput(stderr)
		fs.Usage()
		return usageErr("%v", err)
	}
}

func cmdDiagnose(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	fs := newFlagSet("diagnose")
	mf := config.AddMasterFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return false, err
	}
	cfg, err := mf.Load()
	if err != nil {
		return false, err
	}
	rc, err := cfg.ProbeConfig()
	if err != nil {
		var te *tlsutil.Error
		if errors.As(err, &te) && te.Reason == tlsutil.ReasonBadLocalKeypair {
			rep := &diagnose.Report{Reason: te.Reason, Steps: []diagnose.Step{{Step: "local_keypair", Detail: err.Error(), Reason: te.Reason, Hint: te.Reason.Hint()}}}
			if *asJSON {
				return false, rep.WriteJSON(stdout)
			}
			rep.WriteText(stdout)
			return false, nil
		}
		return false, err
	}
	for _, w := range rc.TLS.Warnings() {
		if !*asJSON {
			fmt.Fprintf(stdout, "WARNING: %s\n", w)
		}
	}
	rep := diagnose.Run(ctx, rc)
	if *asJSON {
		return rep.OK, rep.WriteJSON(stdout)
	}
	rep.WriteText(stdout)
	return rep.OK, nil
}

func cmdCerts(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("certs")
	out := fs.String("out", "", "directory to write ca.pem, server-*.pem, client-*.pem into")
	hosts := fs.String("hosts", "localhost,127.0.0.1,::1", "server certificate subjectAltNames, comma separated")
	days := fs.Int("days", 365, "validity in days")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out is required")
	}
	if *days <= 0 {
		return usageErr("--days must be positive")
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return usageErr("--hosts names no host")
	}
	set, err := tlsutil.MakeCertSet(*out, hs, *days, time.Now())
	if err != nil {
		return err
	}
	if set.Kept {
		fmt.Fprintf(stdout, "%s already holds a CA, a server and a client certificate; nothing written (remove them to make a new set)\n", *out)
		return nil
	}
	fmt.Fprintf(stdout, "CA:     %s (key %s)\nserver: %s (key %s), SANs %s\nclient: %s (key %s)\n",
		set.CA, set.CAKey, set.ServerCert, set.ServerKey, strings.Join(hs, ","), set.ClientCert, set.ClientKey)
	return nil
}

// cmdStatus is `replink status`: it prints a running daemon's /status and
// is its health check: nil only while the daemon streams from the master
// and stores; otherwise errNotReady (exit 1) naming why.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status")
	conf := fs.String("c", "", "the daemon's TOML configuration: its [metrics] listen and web-config-file")
	fs.StringVar(conf, "config", "", "same as -c")
	addr := fs.String("addr", "", "the daemon's [metrics] listen address (default: from -c, else 127.0.0.1:9105)")
	var o status.ClientOptions
	fs.StringVar(&o.SSLMode, "ssl-mode", "", "DISABLED (HTTP), REQUIRED, VERIFY_CA or VERIFY_IDENTITY (default: VERIFY_CA when the web config has TLS or --ssl-ca is given, else DISABLED)")
	fs.StringVar(&o.SSLCA, "ssl-ca", "", "CA certificate to verify the listener with (default with -c: trust the certificate its web config names)")
	fs.StringVar(&o.SSLCert, "ssl-cert", "", "client certificate, for a web config with client_auth_type")
	fs.StringVar(&o.SSLKey, "ssl-key", "", "client key, with --ssl-cert")
	fs.StringVar(&o.User, "user", "", "basic auth user, for a web config with basic_auth_users")
	pwFile := fs.String("password-file", "", "file holding the basic auth password (or env REPLINK_STATUS_PASSWORD)")
	timeout := fs.Int("connect-timeout", 5, "seconds to wait for the answer")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	o.Addr = "127.0.0.1:9105"
	if *conf != "" {
		c := config.Defaults()
		if err := c.LoadFile(*conf); err != nil {
			return err
		}
		o.Addr, o.WebConfig = c.Metrics.Listen, c.Metrics.WebConfigFile
	}
	if *addr != "" {
		o.Addr = *addr
	}
	o.Password = os.Getenv("REPLINK_STATUS_PASSWORD")
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return usageErr("--password-file: %v", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if *timeout <= 0 {
		return usageErr("--connect-timeout must be a positive number of seconds")
	}
	o.Timeout = time.Duration(*timeout) * time.Second
	st, body, err := status.Fetch(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		if _, err := stdout.Write(body); err != nil {
			return err
		}
	} else {
		status.WriteText(stdout, st, time.Now())
	}
	ok, why := status.Ready(st.Master, st.Now)
	if !ok {
		return fmt.Errorf("%w: %s", errNotReady, why)
	}
	fmt.Fprintf(stderr, "replink status: ok: %s\n", why)
	return nil
}

// errNotReady: the daemon answered, and does not stream from the master
// or store (exit 1).
var errNotReady = errors.New("not ready")
