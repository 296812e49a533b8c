package replica

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// Sink receives the stream. The relay log implements it.
type Sink interface {
	// ResumePoint is the end of the last complete transaction stored; zero
	// when nothing is stored yet.
	ResumePoint() binlog.Pos
	// StartFile switches to the master's binlog file name.
	StartFile(name string) error
	// Append stores one event as received; false when it is not part of
	// the file (artificial events, heartbeats).
	Append(ev binlog.Event) (bool, error)
	// Rollback drops an incomplete transaction at the tail.
	Rollback() error
	// WaitDurable returns nil once everything appended is durable (on
	// disk as the sink's sync policy requires), an error when the sink
	// failed to make it so or done was closed. A semi-sync ACK is sent
	// only after it returned nil for the acknowledged event.
	WaitDurable(done <-chan struct{}) error
	// State is the binlog state of what is stored: what a new master's
	// binlog must hold to be followed.
	State() (binlog.State, error)
	// Sequences are the masters the sink holds files of, oldest first;
	// Switch starts the files of a new one (docs/failover.md).
	Sequences() []binlog.Sequence
	Switch(master string, serverID uint32) error
}

// Config is the [master] section, parsed.
type Config struct {
	Endpoint
	ServerID uint32
	// ReportPort is the port replink registers with on the master (SHOW
	// SLAVE HOSTS' Port): its relay port, where its own slaves connect.
	// With the host name it tells replink's own registration from another
	// replica's with the same server-id.
	ReportPort      uint16
	Start           Start
	HeartbeatPeriod time.Duration
	SemiSync        bool
	// MaxBackoff caps the wait between reconnects (30s when zero).
	MaxBackoff time.Duration
	// Candidates may become the master after a failover: each is reached
	// and verified as the master is, against its own name. FailoverWait
	// is how long the master may be unreachable or read-only before
	// replink looks for it among them (docs/failover.md).
	Candidates   []Endpoint
	FailoverWait time.Duration
	// RelayEncrypted: the relay log is encrypted at rest. When it is not
	// and the master encrypts its binlog, replink warns.
	RelayEncrypted bool
}

// Start is where to begin when the sink holds nothing.
type Start struct {
	Kind string // current | file | gtid
	Pos  binlog.Pos
	GTID string
}

// ParseStart reads "oldest", "current", "file:<name>:<pos>" or
// "gtid:<set>" ("" is "oldest").
func ParseStart(s string) (Start, error) {
	switch {
	case s == "" || s == "oldest":
		return Start{Kind: "oldest"}, nil
	case s == "current":
		return Start{Kind: "current"}, nil
	case strings.HasPrefix(s, "file:"):
		p, err := binlog.ParsePos(strings.TrimPrefix(s, "file:"))
		if err != nil {
			return Start{}, err
		}
		return Start{Kind: "file", Pos: p}, nil
	case strings.HasPrefix(s, "gtid:"):
		set := strings.TrimPrefix(s, "gtid:")
		if _, err := mysql.ParseMariadbGTIDSet(set); err != nil {
			if _, err2 := mysql.ParseMysqlGTIDSet(set); err2 != nil {
				return Start{}, fmt.Errorf("gtid set %q: neither MariaDB (%v) nor MySQL (%v)", set, err, err2)
			}
		}
		return Start{Kind: "gtid", GTID: set}, nil
	}
	return Start{}, fmt.Errorf("%q: want oldest, current, file:<name>:<pos> or gtid:<set>", s)
}

// errStall marks a link that went silent for 3 heartbeat periods.
var errStall = errors.New("link stalled: nothing received for 3 heartbeat periods")

// Replica streams from the master into a Sink.
type Replica struct {
	cfg  Config
	sink Sink
	log  hclog.Logger
	m    *Metrics
	tlsm *tlsutil.Metrics

	flavor string
	// sameIDUnchecked: the master's replica list was not readable, said
	// once.
	sameIDUnchecked bool
	// relayEncrypted (Config.RelayEncrypted, then SetRelayEncrypted) and
	// masterEncrypts (as last seen) are under mu.
	relayEncrypted, masterEncrypts bool
	plaintext                      bool // PREFERRED against a master without SSL
	// masterID is the followed server's @@server_id (0 until known).
	masterID atomic.Uint32
	// home is [master] host; cfg.Endpoint is the server followed now,
	// another one after a failover. fo watches it (failover.go).
	home Endpoint
	fo   failover
	// switchGTID: this session starts a new master's files from this
	// GTID position.
	switchGTID string

	// outage is the current loss of the link, for the log.
	outage outage

	mu     sync.Mutex
	status Status

	lastEventTS atomic.Int64 // master timestamp (unix s) of the last real event
	lag         lagClock     // the master time the stream is complete up to, and whether it is caught up
}

// Status is the link state for /status and diagnose.
type Status struct {
	State         string `json:"state"` // connecting, streaming, backoff
	ServerVersion string `json:"server_version,omitempty"`
	Flavor        string `json:"flavor,omitempty"`
	// GTIDMode is a MySQL master's @@GLOBAL.GTID_MODE, which the relay
	// answers its own replicas.
	GTIDMode   string             `json:"gtid_mode,omitempty"`
	TLSVersion string             `json:"tls_version,omitempty"`
	Cipher     string             `json:"cipher,omitempty"`
	PeerChain  []tlsutil.CertInfo `json:"peer_chain,omitempty"`
	Position   string             `json:"position,omitempty"`
	LastError  string             `json:"last_error,omitempty"`
	LastReason tlsutil.Reason     `json:"last_reason,omitempty"`
	Since      time.Time          `json:"since"`
	Reconnects int                `json:"reconnects"`
	Failures   []FailureRecord    `json:"recent_failures,omitempty"`
	// PlaintextCopyOfEncrypted: the master encrypts its binlog files
	// (encrypt_binlog, binlog_encryption) and the relay log does not.
	PlaintextCopyOfEncrypted bool `json:"plaintext_copy_of_encrypted_binlog,omitempty"`
	// Master is the server followed now (host:port); Switches are the
	// last switches to a new master after a failover.
	Master   string         `json:"master"`
	Switches []SwitchRecord `json:"switches,omitempty"`
}

// FailureRecord is one recent connection failure.
type FailureRecord struct {
	Time   time.Time      `json:"time"`
	Reason tlsutil.Reason `json:"reason"`
	Error  string         `json:"error"`
	Hint   string         `json:"hint"`
}

// New makes a replica. tlsm is shared with the relay.
func New(cfg Config, sink Sink, log hclog.Logger, m *Metrics, tlsm *tlsutil.Metrics) *Replica {
	r := &Replica{cfg: cfg, sink: sink, log: log, m: m, tlsm: tlsm, home: cfg.Endpoint, relayEncrypted: cfg.RelayEncrypted}
	r.lag.period = cfg.HeartbeatPeriod
	r.status = Status{State: "connecting", Since: time.Now(), Master: cfg.Addr()}
	m.bind(r)
	return r
}

// Status returns a copy of the link state.
func (r *Replica) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.PeerChain = append([]tlsutil.CertInfo(nil), s.PeerChain...)
	s.Failures = append([]FailureRecord(nil), s.Failures...)
	return s
}

// Lag is now minus the master time the stream is known to be complete up
// to: 0 while it is caught up (the master's last heartbeat, or an event
// it sent as it wrote it, is no older than the master's silence allows),
// else now minus the last event's timestamp or the last heartbeat's
// time. It grows while the link is down.
func (r *Replica) Lag() float64 {
	return r.lag.lag(time.Now())
}

// CaughtUpTo is the master time the stream is known complete up to: now
// while it is caught up; zero before anything arrived. The relay puts it
// in the heartbeats it sends a replink downstream.
func (r *Replica) CaughtUpTo() time.Time {
	return r.lag.completeTo(time.Now())
}

func (r *Replica) setState(f func(*Status)) {
	r.mu.Lock()
	f(&r.status)
	r.mu.Unlock()
}

// Run streams until ctx ends, reconnecting with backoff. A failure counts
// towards the backoff only when no event arrived since the last reconnect.
func (r *Replica) Run(ctx context.Context) error {
	b := newBackoff(r.cfg.MaxBackoff)
	r.resumeMaster()
	r.setState(func(s *Status) { s.Master = r.cfg.Addr() })
	for {
		progressed, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if r.fo.downSince.IsZero() {
			r.fo.downSince = time.Now()
		}
		if errors.Is(err, errUpstreamSwitched) {
			// A replink upstream switched masters: so does this relay log,
			// on the same upstream.
			if err := r.sink.Rollback(); err != nil {
				r.log.Error("following the upstream's new master: cutting back the partial transaction failed", "error", err)
			} else if err := r.sink.Switch(r.cfg.Addr(), 0); err != nil {
				r.log.Error("following the upstream's new master: the relay log could not start its files", "error", err)
			} else {
				r.log.Warn("the replink upstream follows a new master; so does this relay log", "upstream", r.cfg.Addr())
				r.m.switches.WithLabelValues("ok").Inc()
				r.fo.downSince = time.Time{}
				continue
			}
		}
		if errors.Is(err, errReadOnly) {
			// Not a failure of the link: a failover manager is at work.
			r.log.Warn("the master has been read-only for failover-wait; looking for the master", "master", r.cfg.Addr(), "failover_wait", r.cfg.FailoverWait)
			r.m.up.Set(0)
			if !r.lookUntilAttached(ctx) {
				return nil
			}
			r.fo.downSince = time.Time{}
			continue
		}
		reason := reconnectReason(err)
		fix := r.hintFor(reason, err)
		wait := b.next(progressed)
		if reason == ReasonDuplicateServerID && sameIDEnded(err) {
			// Ended by the master for another replica with this id: come
			// back slowly, and look before asking again (startDump), so
			// as not to end its dump in turn.
			wait = b.max
		}
		r.outage.failed(r.log, time.Now(), "master", r.cfg.Addr(), "reason", reason, "error", err, "position", r.sink.ResumePoint(), "hint", fix, "retry_in", wait.Round(time.Millisecond))
		r.m.up.Set(0)
		r.m.reconnects.WithLabelValues(reason).Inc()
		r.tlsm.Disconnected("master")
		r.setState(func(s *Status) {
			s.State, s.Since, s.LastError, s.Reconnects = "backoff", time.Now(), err.Error(), s.Reconnects+1
			s.LastReason = tlsutil.Reason(reason)
			s.Failures = append(s.Failures, FailureRecord{Time: time.Now(), Reason: tlsutil.Reason(reason), Error: err.Error(), Hint: fix})
			if len(s.Failures) > 10 {
				s.Failures = s.Failures[len(s.Failures)-10:]
			}
		})
		if r.lookDue(err, time.Now()) {
			if !r.lookUntilAttached(ctx) {
				return nil
			}
			r.fo.downSince = time.Now() // a whole failover-wait again before the next look
			wait = minBackoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// minBackoff is the first ceiling of the wait between reconnects, and
// the ceiling after a session that made progress.
const minBackoff = 200 * time.Millisecond

// backoff is the wait between reconnects, with full jitter above a floor:
// each wait is drawn uniformly between minBackoff/2 and a ceiling that
// doubles after each session that made no progress, up to max, and starts
// over after one that did. Replinks (and other replicas) that lost the
// same master at the same moment so do not come back to it in lockstep.
type backoff struct {
	ceil, max time.Duration
	// rand is uniform in [0, 1).
	rand func() float64
}

// newBackoff starts at minBackoff; max 0 means 30s.
func newBackoff(max time.Duration) *backoff {
	if max == 0 {
		max = 30 * time.Second
	}
	return &backoff{ceil: minBackoff, max: max, rand: rand.Float64}
}

// next is the wait after a session that progressed or not.
func (b *backoff) next(progressed bool) time.Duration {
	if progressed {
		b.ceil = minBackoff
	}
	c := b.ceil
	if !progressed {
		b.ceil = min(b.ceil*2, b.max)
	}
	floor := min(minBackoff/2, c)
	return floor + time.Duration(b.rand()*float64(c-floor))
}

// outage is the master link's loss, told once: a warning when the link
// is lost, a debug line per failed retry, and an info line with how long
// it was down and how many attempts it took when it is back.
type outage struct {
	since    time.Time // zero while the link is up
	attempts int
}

// failed notes a session that ended with a failure (kv says why).
func (o *outage) failed(log hclog.Logger, now time.Time, kv ...any) {
	o.attempts++
	if o.since.IsZero() {
		o.since = now
		log.Warn("master link lost; retrying quietly until it is back (each retry at debug level)", kv...)
		return
	}
	log.Debug("master link still down", append(kv, "down_for", now.Sub(o.since).Round(time.Millisecond), "attempts", o.attempts)...)
}

// back notes a stream that started; it returns how long the link was
// down and after how many failed attempts (0, 0 when it was not down).
func (o *outage) back(now time.Time) (time.Duration, int) {
	if o.since.IsZero() {
		return 0, 0
	}
	d, n := now.Sub(o.since), o.attempts
	*o = outage{}
	return d, n
}

// reconnectReason is the reconnect label: a handshake reason, stall,
// disconnected (lost mid-stream), master_error (an ERR packet),
// duplicate_server_id (another replica holds replink's server-id) or
// relay_log (storing failed: a full disk, an I/O error, a bad event).
func reconnectReason(err error) string {
	if errors.Is(err, errStall) {
		return "stall"
	}
	var dup *duplicateServerIDError
	if errors.As(err, &dup) || sameIDEnded(err) {
		return ReasonDuplicateServerID
	}
	var sinkErr *sinkError
	if errors.As(err, &sinkErr) {
		return "relay_log"
	}
	var se *streamError
	if errors.As(err, &se) {
		var me *mysql.MyError
		if errors.As(se.err, &me) || strings.Contains(se.err.Error(), "ERROR ") {
			return "master_error"
		}
		return "disconnected"
	}
	return string(tlsutil.Classify(err))
}

// hintFor is the fix for a reconnect of this reason caused by err: the
// reason's hint, or a sharper one where the error says more.
func (r *Replica) hintFor(reason string, err error) string {
	if reason == ReasonDuplicateServerID {
		return duplicateHint(r.cfg.ServerID)
	}
	return hint(reason)
}

// hint is the one-line fix for a reconnect reason.
func hint(reason string) string {
	switch reason {
	case "stall":
		return "the link went silent for 3 heartbeat periods (a firewall or NAT that dropped its state, a hung path); replink reconnected: check the network path if this repeats"
	case "disconnected":
		return "the master closed or broke the stream (a restart, KILL, network loss); replink resumes at the last complete transaction"
	case "master_error":
		return "the master refused the dump: see the error (1236: the binlog it needs was purged; reset the relay log or start elsewhere)"
	case ReasonDuplicateServerID:
		return "another replica streams from the master with replink's server-id: give every replink and slave its own [master] server-id"
	case "relay_log":
		return "storing failed: check data-dir (disk full, permissions, I/O errors); replink retries and resumes by itself"
	}
	return tlsutil.Reason(reason).Hint()
}

// ReconnectReasons are the reconnect label values, pre-initialised.
func ReconnectReasons() []string {
	out := []string{"stall", "disconnected", "master_error", "relay_log", ReasonDuplicateServerID}
	for _, r := range tlsutil.Reasons {
		out = append(out, string(r))
	}
	return out
}

// sinkError is a failure to store what the master sent.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// streamError is a failure after streaming started.
type streamError struct{ err error }

func (e *streamError) Error() string { return "stream: " + e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

// session makes one connection and streams until it fails.
func (r *Replica) session(ctx context.Context) (progressed bool, err error) {
	r.setState(func(s *Status) { s.State, s.Since = "connecting", time.Now() })
	// Rollback first: after a failed fsync it cuts back to the durable
	// point, which ResumePoint then names.
	if err := r.sink.Rollback(); err != nil {
		return false, &sinkError{err}
	}
	from := r.sink.ResumePoint()
	// Right after a switch (or a restart right after one) the new
	// master's sequence has no file yet: start from the new master's
	// file holding the relay log's GTID position.
	r.switchGTID = ""
	if seqs := r.sink.Sequences(); len(seqs) > 1 {
		if dir := seqs[len(seqs)-1].Dir; from.IsZero() || !strings.HasPrefix(from.File, dir+"/") {
			st, err := r.sink.State()
			if err != nil {
				return false, &sinkError{err}
			}
			from, r.switchGTID = binlog.Pos{}, st.Maria.Pos().String()
		}
	}
	from.File = binlog.MasterName(from.File)
	if r.flavor == "" || from.IsZero() {
		start, err := r.prepare(ctx, from)
		if err != nil {
			return false, err
		}
		from = start
	}
	err = r.cfg.withTLS(func(useTLS bool) error {
		if !useTLS && r.cfg.TLS.Mode() == tlsutil.ModePreferred {
			r.log.Warn("master has no SSL; ssl-mode=PREFERRED falls back to plaintext", "master", r.cfg.Addr())
		}
		var err error
		progressed, err = r.stream(ctx, from, useTLS)
		return err
	})
	return progressed, err
}

// prepare connects once as a client: it learns the server's flavor and,
// when the sink is empty, where to start.
func (r *Replica) prepare(ctx context.Context, from binlog.Pos) (binlog.Pos, error) {
	c, a, err := r.cfg.Connect(ctx, "master", r.tlsm)
	if err != nil {
		return from, err
	}
	defer c.Close()
	r.plaintext = a != nil && a.State() == nil && a.Greeting != nil && !a.Greeting.SSL
	r.flavor = mysql.MySQLFlavor
	if strings.Contains(strings.ToLower(c.GetServerVersion()), "mariadb") {
		r.flavor = mysql.MariaDBFlavor
	}
	gtidMode := ""
	if r.flavor == mysql.MySQLFlavor {
		if res, err := c.Execute("SELECT @@GLOBAL.GTID_MODE"); err == nil && res.RowNumber() > 0 {
			gtidMode, _ = res.GetString(0, 0)
		}
	}
	r.setState(func(s *Status) { s.ServerVersion, s.Flavor, s.GTIDMode = c.GetServerVersion(), r.flavor, gtidMode })
	if !from.IsZero() {
		return from, nil
	}
	if r.switchGTID != "" {
		name, err := r.gtidFile(ctx, r.switchGTID)
		if err != nil {
			return from, err
		}
		return binlog.Pos{File: name, Offset: 4}, nil
	}
	switch r.cfg.Start.Kind {
	case "file":
		return binlog.Pos{File: r.cfg.Start.Pos.File, Offset: 4}, nil
	case "gtid":
		name, err := r.gtidFile(ctx, r.cfg.Start.GTID)
		if err != nil {
			return from, err
		}
		return binlog.Pos{File: name, Offset: 4}, nil
	}
	if r.cfg.Start.Kind == "oldest" {
		// Every file the master still has: any slave it can serve, replink
		// can serve too.
		res, err := c.Execute("SHOW BINARY LOGS")
		if err != nil {
			return from, fmt.Errorf("master %s: SHOW BINARY LOGS: %w", r.cfg.Addr(), err)
		}
		if res.RowNumber() > 0 {
			name, _ := res.GetString(0, 0)
			return binlog.Pos{File: name, Offset: 4}, nil
		}
	}
	res, err := c.Execute("SHOW MASTER STATUS")
	if err != nil {
		return from, fmt.Errorf("master %s: SHOW MASTER STATUS: %w", r.cfg.Addr(), err)
	}
	if res.RowNumber() == 0 {
		// A replink upstream with an empty relay log answers so too, until
		// it has stored its master's first file.
		return from, fmt.Errorf("master %s: SHOW MASTER STATUS is empty: binary logging (log_bin) is off, or the master is a replink that has stored nothing yet", r.cfg.Addr())
	}
	name, _ := res.GetString(0, 0)
	return binlog.Pos{File: name, Offset: 4}, nil
}

// gtidFile finds the binlog file that holds the start GTID: it opens a
// GTID dump and reads the file name from the artificial ROTATE that
// starts it. The mirror is then fetched from that file's start.
func (r *Replica) gtidFile(ctx context.Context, gtid string) (string, error) {
	var set mysql.GTIDSet
	var err error
	if r.flavor == mysql.MariaDBFlavor {
		set, err = mysql.ParseMariadbGTIDSet(gtid)
	} else {
		set, err = mysql.ParseMysqlGTIDSet(gtid)
	}
	if err != nil {
		return "", fmt.Errorf("start gtid %q: %w", gtid, err)
	}
	useTLS, err := r.cfg.TLS.Use(!r.plaintext)
	if err != nil {
		return "", err
	}
	c, _, err := r.cfg.connect(ctx, "master", r.tlsm, useTLS)
	if err != nil {
		return "", err
	}
	defer c.Close()
	d, err := r.startDump(c, binlog.Pos{}, set)
	if err != nil {
		return "", fmt.Errorf("master %s: GTID dump from %s: %w", r.cfg.Addr(), set, err)
	}
	defer r.killDump(c.GetConnectionID(), useTLS)
	// connect bounds the connection by connect-timeout: the ROTATE must
	// come within it.
	for {
		raw, _, err := d.next()
		if err != nil {
			return "", fmt.Errorf("master %s: GTID dump from %s sent no ROTATE: %w", r.cfg.Addr(), set, err)
		}
		if ev, err := binlog.ParseEvent(raw); err == nil && ev.Type() == binlog.TypeRotate {
			name, _, err := binlog.RotateTarget(ev)
			return name, err
		}
	}
}
