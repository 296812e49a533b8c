package relay

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/packet"
	"github.com/replink/replink/tlsutil"
)

// The server side of the MySQL protocol is replink's own. go-mysql's
// server package, which replink used before, panicked on malformed logins
// (connection attributes cut short, an empty command), answered an unknown
// user with 1449 where a master answers 1045 (telling a scanner which
// accounts exist), grew its read buffer to whatever a packet header
// claimed before anyone had logged in, and refused a login that sets the
// plugin-auth capability without naming a plugin, which MariaDB takes as
// the default. go-mysql's mysql package still provides the encodings
// (length-encoded integers, result sets, error texts).

const (
	// loginMax bounds a message before authentication: a login packet is
	// a user name, a scramble, a database, a plugin name and attributes.
	loginMax = 64 << 10
	// commandMax bounds a command after it: what slaves and binlog
	// clients send is a few hundred bytes.
	commandMax = 1 << 20

	nativePassword   = "mysql_native_password"
	statusAutocommit = 0x0002

	comQuit = 0x01
)

// serverCapabilities are those a MariaDB master offers a replication
// client, less what replink does not implement.
const serverCapabilities = mysql.CLIENT_LONG_PASSWORD | mysql.CLIENT_LONG_FLAG | mysql.CLIENT_CONNECT_WITH_DB |
	mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_TRANSACTIONS | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH |
	mysql.CLIENT_CONNECT_ATTRS | mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA

var connIDs atomic.Uint32

// conn is one client connection, server side.
type conn struct {
	net.Conn // the protocol's stream: the socket, or TLS over it
	wire     *tlsutil.WireConn
	id       uint32
	salt     []byte
	caps     uint32 // the client's capabilities, within ours
	seq      uint8  // of the next packet written
	r        *packet.Reader
	w        *bufio.Writer
}

// rejection is a failed login with the reason it is counted under.
type rejection struct {
	reason string // auth, require, tls, protocol
	user   string // the account named, once the login was read
	err    error  // why, for the log
	// answer is what the client is told (1045), nil when it is cut off.
	answer *mysql.MyError
}

func (r *rejection) Error() string { return r.reason + ": " + r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason string, err error) error { return &rejection{reason: reason, err: err} }

// handshakeResponse is what a client's login packet says.
type handshakeResponse struct {
	caps   uint32
	user   string
	auth   []byte
	plugin string
}

// greet writes the initial handshake.
func (c *conn) greet(version string, offerTLS bool) error {
	c.id = connIDs.Add(1)
	c.salt = scramble()
	caps := uint32(serverCapabilities)
	if offerTLS {
		caps |= mysql.CLIENT_SSL
	}
	p := []byte{10}
	p = append(p, version...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, c.id)
	p = append(p, c.salt[:8]...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, mysql.DEFAULT_COLLATION_ID)
	p = binary.LittleEndian.AppendUint16(p, statusAutocommit)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, byte(len(c.salt)+1))
	p = append(p, make([]byte, 10)...)
	p = append(p, c.salt[8:]...)
	p = append(p, 0)
	p = append(p, nativePassword...)
	p = append(p, 0)
	c.w = bufio.NewWriterSize(c.Conn, 16<<10)
	return c.send(p)
}

// scramble is 20 random printable bytes, never NUL, as a master makes them.
func scramble() []byte {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = b[i]%94 + 33
	}
	return b
}

// readLogin reads the client's login, switching to TLS first when it asks
// with an SSL request. tlsCfg is nil when no TLS is offered.
func (c *conn) readLogin(tlsCfg *tls.Config) (*handshakeResponse, error) {
	p, seq, err := packet.ReadOne(c.Conn, 1, loginMax)
	if err != nil {
		return nil, reject("protocol", err)
	}
	if len(p) == 32 && binary.LittleEndian.Uint32(p)&mysql.CLIENT_SSL != 0 {
		if tlsCfg == nil {
			return nil, reject("tls", errors.New("client asked for TLS, which is not offered"))
		}
		tc := tls.Server(c.Conn, tlsCfg)
		if err := tc.Handshake(); err != nil {
			return nil, reject("tls", err)
		}
		c.Conn = tc
		c.w.Reset(tc)
		if p, seq, err = packet.ReadOne(c.Conn, seq, loginMax); err != nil {
			return nil, reject("protocol", err)
		}
	}
	c.seq = seq
	hr, err := parseHandshakeResponse(p)
	if err != nil {
		// As a master answers a login it cannot read.
		return nil, &rejection{reason: "protocol", err: err, answer: mysql.NewDefaultError(mysql.ER_HANDSHAKE_ERROR)}
	}
	c.caps = hr.caps & (serverCapabilities | mysql.CLIENT_SSL)
	if hr.plugin != nativePassword {
		// Another plugin (caching_sha2_password from a MySQL 8 client, ed25519,
		// none named): ask for mysql_native_password, as a master whose
		// account uses it does.
		c.salt = scramble()
		sw := append([]byte{0xfe}, nativePassword...)
		sw = append(append(append(sw, 0), c.salt...), 0)
		if err := c.send(sw); err != nil {
			return nil, err
		}
		if hr.auth, c.seq, err = packet.ReadOne(c.Conn, c.seq, loginMax); err != nil {
			return nil, reject("protocol", err)
		}
		hr.plugin = nativePassword
	}
	return hr, nil
}

// parseHandshakeResponse decodes a HandshakeResponse41, checking every
// length against the packet.
func parseHandshakeResponse(p []byte) (*handshakeResponse, error) {
	bad := func(what string) error { return fmt.Errorf("malformed login packet: %s", what) }
	if len(p) < 32 {
		return nil, bad("shorter than its fixed part")
	}
	hr := &handshakeResponse{caps: binary.LittleEndian.Uint32(p)}
	if hr.caps&mysql.CLIENT_PROTOCOL_41 == 0 {
		return nil, bad("a pre-4.1 client")
	}
	rest := p[32:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return nil, bad("user name not terminated")
	}
	hr.user, rest = string(rest[:i]), rest[i+1:]
	switch {
	case hr.caps&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		n, k, ok := lenencInt(rest)
		if !ok || n > uint64(len(rest)-k) {
			return nil, bad("auth data length")
		}
		hr.auth, rest = rest[k:k+int(n)], rest[k+int(n):]
	case hr.caps&mysql.CLIENT_SECURE_CONNECTION != 0:
		if len(rest) < 1 || int(rest[0]) > len(rest)-1 {
			return nil, bad("auth data length")
		}
		n := int(rest[0])
		hr.auth, rest = rest[1:1+n], rest[1+n:]
	default:
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, bad("auth data not terminated")
		}
		hr.auth, rest = rest[:i], rest[i+1:]
	}
	if hr.caps&mysql.CLIENT_CONNECT_WITH_DB != 0 && len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, bad("database not terminated")
		}
		rest = rest[i+1:]
	}
	if hr.caps&mysql.CLIENT_PLUGIN_AUTH != 0 && len(rest) > 0 {
		// A missing plugin name means the default, as MariaDB takes it
		// (the @vlasky/mysql driver sends none).
		if i := bytes.IndexByte(rest, 0); i >= 0 {
			hr.plugin = string(rest[:i])
		} else {
			hr.plugin = string(rest)
		}
	}
	if hr.plugin == "" {
		hr.plugin = nativePassword
	}
	// Connection attributes follow; replink does not read them.
	return hr, nil
}

// lenencInt reads a length-encoded integer at the start of b, checking
// that all its bytes are there (go-mysql's LengthEncodedInt indexes past
// a short buffer); k is how many bytes it took. NULL (0xfb) and 0xff are
// not lengths.
func lenencInt(b []byte) (n uint64, k int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] {
	case 0xfb, 0xff:
		return 0, 0, false
	case 0xfc:
		k = 3
	case 0xfd:
		k = 4
	case 0xfe:
		k = 9
	default:
		return uint64(b[0]), 1, true
	}
	if len(b) < k {
		return 0, 0, false
	}
	for i := k - 1; i >= 1; i-- {
		n = n<<8 | uint64(b[i])
	}
	return n, k, true
}

// nativeHash is what mysql_native_password stores: SHA1(SHA1(password)).
func nativeHash(password string) [sha1.Size]byte {
	h1 := sha1.Sum([]byte(password))
	return sha1.Sum(h1[:])
}

// checkNative verifies a mysql_native_password scramble against the
// stored hash: the client sends SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw))).
// The work is the same whatever the input, so the time taken tells
// nothing about the account.
func checkNative(stored [sha1.Size]byte, salt, auth []byte) bool {
	h := sha1.New()
	h.Write(salt)
	h.Write(stored[:])
	mask := h.Sum(nil)
	var h1 [sha1.Size]byte
	if len(auth) == sha1.Size {
		for i := range h1 {
			h1[i] = auth[i] ^ mask[i]
		}
	}
	got := sha1.Sum(h1[:])
	return subtle.ConstantTimeCompare(got[:], stored[:]) == 1 && len(auth) == sha1.Size
}

// send writes one message and flushes.
func (c *conn) send(p []byte) error {
	if err := packet.WriteMessage(c.w, &c.seq, p); err != nil {
		return err
	}
	return c.w.Flush()
}

// writeOK, writeErr and writeResult answer a command.
func (c *conn) writeOK() error {
	p := []byte{mysql.OK_HEADER, 0, 0}
	p = binary.LittleEndian.AppendUint16(p, statusAutocommit)
	return c.send(binary.LittleEndian.AppendUint16(p, 0))
}

func (c *conn) writeErr(err error) error {
	var me *mysql.MyError
	if !errors.As(err, &me) {
		me = mysql.NewError(mysql.ER_UNKNOWN_ERROR, err.Error())
	}
	p := []byte{mysql.ERR_HEADER}
	p = binary.LittleEndian.AppendUint16(p, me.Code)
	state := me.State
	if len(state) != 5 {
		state = "HY000"
	}
	p = append(append(append(p, '#'), state...), me.Message...)
	return c.send(p)
}

func (c *conn) writeEOF() error {
	p := []byte{mysql.EOF_HEADER, 0, 0}
	return c.send(binary.LittleEndian.AppendUint16(p, statusAutocommit))
}

// writeResult answers a query: OK for nil, else a text result set.
func (c *conn) writeResult(r *mysql.Result) error {
	if r == nil || r.Resultset == nil {
		return c.writeOK()
	}
	rs := r.Resultset
	if err := packet.WriteMessage(c.w, &c.seq, mysql.PutLengthEncodedInt(uint64(len(rs.Fields)))); err != nil {
		return err
	}
	for _, f := range rs.Fields {
		if err := packet.WriteMessage(c.w, &c.seq, f.Dump()); err != nil {
			return err
		}
	}
	if err := c.writeEOF(); err != nil {
		return err
	}
	for _, row := range rs.RowDatas {
		if err := packet.WriteMessage(c.w, &c.seq, row); err != nil {
			return err
		}
	}
	return c.writeEOF()
}

// nextCommand reads the next command; the answer's packets are numbered
// on from it.
func (c *conn) nextCommand() ([]byte, error) {
	if c.r == nil {
		c.r = packet.NewReader(c.Conn, 16<<10, commandMax)
	}
	c.r.SetSequence(0)
	p, err := c.r.Next()
	if err != nil {
		return nil, err
	}
	c.seq = c.r.Sequence()
	return p, nil
}
