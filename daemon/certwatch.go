package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/replink/replink/tlsutil"
)

// DefaultCertWatchInterval is how often replink reads its certificate,
// key, CA and CRL files to see whether they changed. A Kubernetes Secret
// volume is updated by swapping its ..data symlink, which watching the
// files themselves with inotify would miss, so the files' contents are
// compared instead; a few small files every few seconds cost nothing,
// and the kubelet takes far longer to deliver a renewed Secret.
const DefaultCertWatchInterval = 5 * time.Second

// certWatch is what the daemon knows of its TLS files between reloads.
// Its lock makes reloads (SIGHUP, changed files) one at a time.
type certWatch struct {
	mu sync.Mutex
	// loaded is the files as they were when the material in use was
	// read; failed, when not nil, is the files a reload last failed on,
	// not tried again until they change.
	loaded, failed tlsutil.Fingerprint
}

// fingerprint reads every TLS file of both sides now.
func (d *Daemon) fingerprint() tlsutil.Fingerprint {
	fp := tlsutil.FingerprintOf("master ", d.cfg.Master.TLS.Sources())
	fp.Add("relay ", d.cfg.Relay.TLS.Sources())
	return fp
}

// watchCerts reloads the certificates of both sides, as SIGHUP does,
// whenever their files change, until ctx ends.
func (d *Daemon) watchCerts(ctx context.Context) error {
	if d.cfg.CertWatchInterval < 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(d.cfg.CertWatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			d.pollCerts()
		}
	}
}

// pollCerts reloads when the files differ from those loaded, unless they
// are the very files the last reload failed on: a half-written set (a new
// certificate, its key not there yet) fails once, is logged and counted
// once, and is tried again when a file changes again.
func (d *Daemon) pollCerts() {
	d.watch.mu.Lock()
	fp := d.fingerprint()
	changed := fp.Changed(d.watch.loaded)
	retry := len(changed) > 0 && (d.watch.failed == nil || len(fp.Changed(d.watch.failed)) > 0)
	d.watch.mu.Unlock()
	if retry {
		_ = d.reloadAs("files changed", changed, fp) // logged and counted
	}
}

// Reload reads the certificates and keys of both sides again (SIGHUP). It
// parses everything first and swaps both sides or neither: a bad file on
// one side keeps the old certificates on both. Connections open now keep
// the certificates they were made with; new ones use the new.
func (d *Daemon) Reload() error { return d.reloadAs("SIGHUP", nil, d.fingerprint()) }

// reloadAs reloads both sides, logging and counting the result once;
// trigger and changed (the files that changed, if known) go in the log.
// fp is the files as read before the reload (the poll's own reading): a
// change during the reload is seen by the next poll.
func (d *Daemon) reloadAs(trigger string, changed []string, fp tlsutil.Fingerprint) error {
	d.watch.mu.Lock()
	defer d.watch.mu.Unlock()
	kv := []any{"trigger", trigger}
	if len(changed) > 0 {
		kv = append(kv, "changed", strings.Join(changed, ", "))
	}
	if err := d.reload(); err != nil {
		d.watch.failed = fp
		d.m.reloadFailed()
		d.log.Error("certificate reload failed; keeping the old certificates on both sides", append(kv, "error", err)...)
		return err
	}
	d.watch.loaded, d.watch.failed = fp, nil
	d.m.reloadOK()
	local := d.localCerts()
	d.tlsm.SetLocalCerts(local)
	for _, c := range local {
		if c.Role != "ca" {
			kv = append(kv, c.Role, fmt.Sprintf("serial %s not_after %s", c.Serial, c.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	d.log.Info("certificates reloaded", kv...)
	return nil
}

func (d *Daemon) reload() error {
	master, err := d.cfg.Master.TLS.Stage()
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	relaySide, err := d.cfg.Relay.TLS.Stage()
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if d.cfg.ReloadAtRest != nil {
		// The at-rest keys with the certificates, all or nothing: every
		// relay file must still be readable with the new ones.
		rest, err := d.cfg.ReloadAtRest()
		if err != nil {
			return fmt.Errorf("relay key-file: %w", err)
		}
		if err := d.rlog.SetAtRest(rest); err != nil {
			return fmt.Errorf("relay key-file: %w", err)
		}
		d.rep.SetRelayEncrypted(rest != nil)
	}
	master()
	relaySide()
	return nil
}
