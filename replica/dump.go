package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/packet"
)

// The replication connection is replink's own: go-mysql logs in (TLS,
// authentication), then replink registers as a slave, asks for the dump
// and reads the stream. Events are handed out straight from the read
// buffer, with no copy and no allocation per event; go-mysql's
// BinlogSyncer copies each one twice into a fresh buffer, which cost a
// third of replink's CPU on the ingest benchmark.

const (
	comRegisterSlave  = 0x15
	comBinlogDump     = 0x12
	comBinlogDumpGTID = 0x1e
	semiSyncMagic     = 0xef
	// readBufSize bounds the events read in place; larger ones are
	// gathered in a reused buffer.
	readBufSize = 256 << 10
	// maxMessage bounds a message from the master: the largest event and
	// room for its headers.
	maxMessage = binlog.MaxEventSize + 1<<20
	// dumpSendAnnotateRows is MariaDB's BINLOG_SEND_ANNOTATE_ROWS_EVENT:
	// without it the master leaves Annotate_rows out and the mirror would
	// not be byte for byte.
	dumpSendAnnotateRows = 2
)

// dumpStream reads a COM_BINLOG_DUMP stream.
type dumpStream struct {
	c    *client.Conn
	r    *packet.Reader
	semi bool
}

// newDumpStream reads the dump from raw, the connection below go-mysql's
// buffers, once the dump command (packet 0) is sent.
func newDumpStream(c *client.Conn, raw io.Reader, semi bool) *dumpStream {
	r := packet.NewReader(raw, readBufSize, maxMessage)
	r.SetSequence(1)
	return &dumpStream{c: c, r: r, semi: semi}
}

// startDump prepares the logged-in connection c and asks the master for
// the binlog from pos, or from the GTID set gtid when it is not nil:
// checksum awareness, heartbeats, MariaDB's GTID capability, semi-sync
// when wanted and enabled on the master, then COM_REGISTER_SLAVE and the
// dump command.
func (r *Replica) startDump(c *client.Conn, pos binlog.Pos, gtid mysql.GTIDSet) (*dumpStream, error) {
	// The server followed, for replink_master_info; one that will not say
	// is followed all the same.
	if res, err := c.Execute("SELECT @@global.server_id"); err == nil && res.RowNumber() > 0 {
		if id, err := res.GetUint(0, 0); err == nil {
			r.masterID.Store(uint32(id))
		}
	}
	res, err := c.Execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_checksum', 'encrypt_binlog', 'binlog_encryption', 'file_key_management_encryption_algorithm')")
	if err != nil {
		return nil, fmt.Errorf("checking binlog_checksum: %w", err)
	}
	vars := map[string]string{}
	for i := 0; i < res.RowNumber(); i++ {
		name, _ := res.GetString(i, 0)
		vars[strings.ToLower(name)], _ = res.GetString(i, 1)
	}
	r.checkAtRest(vars)
	if _, ok := vars["binlog_checksum"]; ok {
		// Declares replink checksum-aware: the master sends events with
		// the checksums it stored, as mysqlbinlog asks.
		if _, err := c.Execute("SET @master_binlog_checksum = 'NONE', @source_binlog_checksum = 'NONE'"); err != nil {
			return nil, fmt.Errorf("declaring checksum awareness: %w", err)
		}
	}
	// Asks a replink upstream for heartbeats that carry its master's clock
	// (see relay's masterClock); a master keeps the variable and ignores it.
	if _, err := c.Execute("SET @replink_master_clock = 1"); err != nil {
		return nil, fmt.Errorf("asking for the master's clock in heartbeats: %w", err)
	}
	if r.flavor == mysql.MariaDBFlavor {
		if _, err := c.Execute("SET @mariadb_slave_capability = 4"); err != nil {
			return nil, fmt.Errorf("declaring MariaDB GTID capability: %w", err)
		}
	}
	if hb := r.cfg.HeartbeatPeriod; hb > 0 {
		if _, err := c.Execute(fmt.Sprintf("SET @master_heartbeat_period = %d, @source_heartbeat_period = %d", hb.Nanoseconds(), hb.Nanoseconds())); err != nil {
			return nil, fmt.Errorf("asking for heartbeats: %w", err)
		}
	}
	semi := false
	if r.cfg.SemiSync {
		res, err := c.Execute("SHOW VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')")
		if err != nil {
			return nil, fmt.Errorf("checking semi-sync on the master: %w", err)
		}
		for i := 0; i < res.RowNumber(); i++ {
			if v, _ := res.GetString(i, 1); strings.EqualFold(v, "ON") {
				semi = true
			}
		}
		if !semi {
			r.log.Warn("semi-sync is on in replink but not on the master; streaming asynchronously", "master", r.cfg.Addr())
		} else if _, err := c.Execute("SET @rpl_semi_sync_slave = 1, @rpl_semi_sync_replica = 1"); err != nil {
			return nil, fmt.Errorf("asking for semi-sync: %w", err)
		}
	}
	self := r.cfg.Registration()
	switch holder, err := SameIDReplica(c, r.cfg.ServerID, self); {
	case err != nil:
		if !r.sameIDUnchecked {
			r.sameIDUnchecked = true
			r.log.Info("cannot see the master's replicas, so a replica with replink's server-id is found only when the master ends one of the two dumps; GRANT REPLICATION MASTER ADMIN to the user to check before registering", "error", err)
		}
	case holder != "":
		return nil, &duplicateServerIDError{id: r.cfg.ServerID, holder: holder}
	}
	c.ResetSequence()
	if err := c.WritePacket(registerSlavePacket(r.cfg.ServerID, r.cfg.User, self)); err != nil {
		return nil, fmt.Errorf("COM_REGISTER_SLAVE: %w", err)
	}
	if _, err := c.ReadOKPacket(); err != nil {
		return nil, fmt.Errorf("COM_REGISTER_SLAVE: %w", err)
	}
	var flags uint16
	if r.flavor == mysql.MariaDBFlavor {
		flags = dumpSendAnnotateRows
	}
	cmd := dumpPacket(pos, flags, r.cfg.ServerID)
	switch {
	case gtid == nil:
	case r.flavor == mysql.MariaDBFlavor:
		// The file and position of the dump are then ignored.
		if _, err := c.Execute(fmt.Sprintf("SET @slave_connect_state = '%s', @slave_gtid_strict_mode = 1", gtid)); err != nil {
			return nil, fmt.Errorf("setting the GTID start: %w", err)
		}
		cmd = dumpPacket(binlog.Pos{}, flags, r.cfg.ServerID)
	default:
		cmd = dumpGTIDPacket(gtid.Encode(), r.cfg.ServerID)
	}
	c.ResetSequence()
	if err := c.WritePacket(cmd); err != nil {
		return nil, fmt.Errorf("binlog dump command: %w", err)
	}
	// Every answer so far was read whole, so nothing of the stream sits in
	// go-mysql's buffers: from here the stream is read below them. The
	// packet-size guard is for go-mysql's reads; this reader has its own.
	raw := c.Conn.Conn
	if pl, ok := raw.(*packetLimit); ok {
		raw = pl.Conn
	}
	return newDumpStream(c, raw, semi), nil
}

// ReportHost is the host name replink registers with on the master, as
// SHOW SLAVE HOSTS lists it (with the relay port: Config.Registration).
func ReportHost() string {
	h, _ := os.Hostname()
	return trunc(h)
}

// registerSlavePacket is COM_REGISTER_SLAVE with 4 header bytes to fill.
func registerSlavePacket(serverID uint32, user string, self Registration) []byte {
	host, user := trunc(self.Host), trunc(user)
	p := make([]byte, 4, 4+1+4+1+len(host)+1+len(user)+1+2+4+4)
	p = append(p, comRegisterSlave)
	p = binary.LittleEndian.AppendUint32(p, serverID)
	p = append(p, byte(len(host)))
	p = append(p, host...)
	p = append(p, byte(len(user)))
	p = append(p, user...)
	p = append(p, 0) // no password
	p = binary.LittleEndian.AppendUint16(p, self.Port)
	p = binary.LittleEndian.AppendUint32(p, 0)    // rank, unused
	return binary.LittleEndian.AppendUint32(p, 0) // master id: 0 is fine
}

func trunc(s string) string {
	if len(s) > 255 {
		return s[:255]
	}
	return s
}

// dumpPacket is COM_BINLOG_DUMP from pos with 4 header bytes to fill.
func dumpPacket(pos binlog.Pos, flags uint16, serverID uint32) []byte {
	p := make([]byte, 4, 4+1+4+2+4+len(pos.File))
	p = append(p, comBinlogDump)
	p = binary.LittleEndian.AppendUint32(p, pos.Offset)
	p = binary.LittleEndian.AppendUint16(p, flags)
	p = binary.LittleEndian.AppendUint32(p, serverID)
	return append(p, pos.File...)
}

// dumpGTIDPacket is MySQL's COM_BINLOG_DUMP_GTID from the encoded GTID
// set, with no file name (position 4), with 4 header bytes to fill.
func dumpGTIDPacket(set []byte, serverID uint32) []byte {
	p := make([]byte, 4, 4+1+2+4+4+8+4+len(set))
	p = append(p, comBinlogDumpGTID)
	p = binary.LittleEndian.AppendUint16(p, 0) // flags
	p = binary.LittleEndian.AppendUint32(p, serverID)
	p = binary.LittleEndian.AppendUint32(p, 0) // file name length
	p = binary.LittleEndian.AppendUint64(p, 4)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(set)))
	return append(p, set...)
}

// errEndOfDump is the master ending the dump with an EOF packet.
var errEndOfDump = errors.New("the master ended the binlog dump")

// next returns the next event and whether the master wants a semi-sync
// ACK for it. The event is valid until the following call.
func (d *dumpStream) next() (ev []byte, ack bool, err error) {
	p, err := d.r.Next()
	if err != nil {
		return nil, false, framingErr(err)
	}
	switch {
	case len(p) == 0:
		return nil, false, errors.New("empty packet in the binlog stream")
	case p[0] == 0xff:
		return nil, false, parseErrPacket(p)
	case p[0] == 0xfe && len(p) < 9:
		return nil, false, errEndOfDump
	case p[0] != 0x00:
		return nil, false, fmt.Errorf("unexpected packet 0x%02x in the binlog stream", p[0])
	}
	p = p[1:]
	if d.semi && len(p) >= 2 && p[0] == semiSyncMagic {
		ack, p = p[1] == 1, p[2:]
	}
	return p, ack, nil
}

// framingErr says who broke the framing; read errors pass as they are.
func framingErr(err error) error {
	var tooLarge *packet.TooLargeError
	var order *packet.SequenceError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("master sent a %w", err)
	case errors.As(err, &order):
		return fmt.Errorf("binlog stream %w", err)
	}
	return err
}

// ackSemiSync tells the master that the event ending at pos in file is
// durable. The master numbers its packets from 1 again after an event
// that asked for an ACK.
func (d *dumpStream) ackSemiSync(file string, pos uint32) error {
	p := make([]byte, 4, 4+1+8+len(file))
	p = append(p, semiSyncMagic)
	p = binary.LittleEndian.AppendUint64(p, uint64(pos))
	p = append(p, file...)
	d.c.ResetSequence()
	if err := d.c.WritePacket(p); err != nil {
		return fmt.Errorf("semi-sync ACK: %w", err)
	}
	d.r.SetSequence(1)
	return nil
}

// parseErrPacket turns an ERR packet into a *mysql.MyError. go-mysql's
// HandleErrorPacket would keep the message pointing into the read buffer,
// which the next read overwrites, and trusts the packet's length.
func parseErrPacket(p []byte) error {
	if len(p) < 3 {
		return &mysql.MyError{Code: 0, Message: "malformed error packet from the master"}
	}
	e := &mysql.MyError{Code: binary.LittleEndian.Uint16(p[1:3])}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

// killDump ends the dump thread of connection id on the master from a
// new connection, so it does not linger after a stall or a stop (a
// thread whose client vanished can wait on the network for long).
func (r *Replica) killDump(id uint32, useTLS bool) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ConnectTimeout)
	defer cancel()
	c, _, err := r.cfg.connect(ctx, "master", r.tlsm, useTLS)
	if err != nil {
		r.log.Debug("could not connect to end the old dump thread", "master", r.cfg.Addr(), "error", err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(r.cfg.ConnectTimeout))
	if _, err := c.Execute(fmt.Sprintf("KILL %d", id)); err != nil {
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != mysql.ER_NO_SUCH_THREAD {
			r.log.Debug("could not end the old dump thread", "master", r.cfg.Addr(), "id", id, "error", err)
		}
	}
}

// peerClosed says whether err means the master closed the connection
// itself (then its dump thread is gone already), between messages or
// inside one.
func peerClosed(err error) bool {
	var me *mysql.MyError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errEndOfDump) || errors.As(err, &me)
}

// MasterEncrypts reports whether a server's variables (names in lower
// case) say it encrypts its binlog files: MariaDB's encrypt_binlog,
// MySQL's binlog_encryption.
func MasterEncrypts(vars map[string]string) bool {
	return strings.EqualFold(vars["encrypt_binlog"], "ON") || strings.EqualFold(vars["binlog_encryption"], "ON")
}

// checkAtRest notes whether the master encrypts its binlog files while
// the relay log, which holds the same rows, does not, and tells a relay
// log that encrypts at rest the master's algorithm
// (file_key_management_encryption_algorithm), which the master's
// Start_encryption event does not carry.
func (r *Replica) checkAtRest(vars map[string]string) {
	if s, ok := r.sink.(interface{ MasterAlgorithm(string) }); ok {
		s.MasterAlgorithm(strings.ToUpper(vars["file_key_management_encryption_algorithm"]))
	}
	r.updatePlaintextCopy(func() { r.masterEncrypts = MasterEncrypts(vars) })
}

// SetRelayEncrypted says whether the relay log is encrypted at rest now
// (a reload may turn it on): /status follows at once, not at the next
// connect.
func (r *Replica) SetRelayEncrypted(on bool) {
	r.updatePlaintextCopy(func() { r.relayEncrypted = on })
}

// updatePlaintextCopy makes change (under mu) and recomputes whether the
// relay log holds in plaintext what the master encrypts, warning once
// when that starts.
func (r *Replica) updatePlaintextCopy(change func()) {
	r.mu.Lock()
	change()
	was := r.status.PlaintextCopyOfEncrypted
	now := r.masterEncrypts && !r.relayEncrypted
	r.status.PlaintextCopyOfEncrypted = now
	r.mu.Unlock()
	if now && !was {
		r.log.Warn("the master encrypts its binlog files but replink's relay log is not encrypted: the relay host holds in plaintext what the master protects; set [relay] key-file (the master's key file works as it is) to encrypt the relay log at rest", "master", r.cfg.Addr())
	}
}
