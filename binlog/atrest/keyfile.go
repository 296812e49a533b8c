package atrest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/replink/replink/tlsutil"
)

// Limits of MariaDB's file_key_management (plugin/file_key_management/parser.cc).
const (
	maxKeyFileSize = 1 << 20 // MAX_KEY_FILE_SIZE: a longer file is read only this far
	maxSecretSize  = 256     // MAX_SECRET_SIZE: of a FILE: filekey
	filekeyPrefix  = "FILE:"
	opensslMagic   = "Salted__"
	opensslSaltLen = 8
)

// Keys are the keys of one key file by id (1 .. 2^32-1). Each key is 16,
// 24 or 32 bytes (AES-128, -192, -256). file_key_management has one
// version of each key, version 1.
type Keys map[uint32][]byte

// Key returns the key with id, or an error naming the id.
func (k Keys) Key(id uint32) ([]byte, error) {
	key, ok := k[id]
	if !ok {
		return nil, fmt.Errorf("no key with id %d (ids in the key file: %s)", id, k.ids())
	}
	return key, nil
}

func (k Keys) ids() string {
	ids := make([]uint32, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, id)
	}
	return b.String()
}

// SyntaxError is a key file line MariaDB would refuse, with its words:
// "Syntax error", "Invalid key id", "Invalid key" at a line and column
// (both from 1), or "System key id 1 is missing" (Line 0).
type SyntaxError struct {
	File   string
	Line   int
	Column int
	Reason string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("key file %s: %s", e.File, e.Reason)
	}
	// MariaDB: "%s at %s line %u, column %zu".
	return fmt.Sprintf("key file %s: %s at line %d, column %d", e.File, e.Reason, e.Line, e.Column)
}

// ErrWrongFileKey is a key file that does not decrypt with the file key
// given (MariaDB: "Cannot decrypt %s. Wrong key?").
var ErrWrongFileKey = errors.New("cannot decrypt: wrong key-file-key-file password?")

// ErrNotEncrypted is a file key given for a key file that is not
// encrypted (MariaDB: "Cannot decrypt %s. Not encrypted"): MariaDB
// refuses it, so replink does too rather than silently ignore the secret.
var ErrNotEncrypted = errors.New("cannot decrypt: not encrypted (it does not start with \"Salted__\"), but a key-file-key-file is set")

// LoadKeys reads keyFile, the key file, decrypting it with the password
// in passFile when passFile is set (replink's key-file-key-file: the file
// holds what MariaDB's file_key_management_filekey=FILE:<passFile> reads).
// Both files are secrets: one that others can read or write, or its group
// write, is refused with an error naming it, as private keys are.
func LoadKeys(keyFile, passFile string) (Keys, error) {
	var secret string
	if passFile != "" {
		s, err := ReadFileKey(passFile)
		if err != nil {
			return nil, err
		}
		secret = s
	}
	if err := CheckSecretFile(keyFile); err != nil {
		return nil, fmt.Errorf("key file %s: %w", keyFile, err)
	}
	data, err := readLimited(keyFile, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", keyFile, err)
	}
	return ParseKeys(keyFile, data, secret)
}

// FileKey turns a file_key_management_filekey value into the secret it
// stands for: "FILE:<path>" is read from path (see ReadFileKey), anything
// else is the secret itself.
func FileKey(filekey string) (string, error) {
	if path, ok := strings.CutPrefix(filekey, filekeyPrefix); ok {
		return ReadFileKey(path)
	}
	return filekey, nil
}

// ReadFileKey reads the secret of an encrypted key file from name as
// MariaDB reads a "FILE:" filekey: the whole file, less trailing CR and
// LF, at most 256 bytes. The file must be private (CheckSecretFile).
func ReadFileKey(name string) (string, error) {
	if err := CheckSecretFile(name); err != nil {
		return "", fmt.Errorf("key-file-key-file %s: %w", name, err)
	}
	b, err := readLimited(name, maxSecretSize+1)
	if err != nil {
		return "", fmt.Errorf("key-file-key-file %s: %w", name, err)
	}
	b = bytes.TrimRight(b, "\r\n")
	switch {
	case len(b) == 0:
		return "", fmt.Errorf("key-file-key-file %s: empty", name)
	case len(b) > maxSecretSize:
		return "", fmt.Errorf("key-file-key-file %s: the filekey is too long, max secret size is %d bytes", name, maxSecretSize)
	}
	return string(b), nil
}

// CheckSecretFile refuses a file that others can read or write, or its
// group write: the rule for private keys (tlsutil.CheckKeyFile), which
// lets a Secret mounted with fsGroup (0440, 0640) be read.
func CheckSecretFile(name string) error {
	return tlsutil.CheckKeyFile(name)
}

func readLimited(name string, n int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// ParseKeys parses the content of a key file, decrypting it first when
// it starts with "Salted__" (openssl enc -aes-256-cbc -md sha1 -pass ...).
// secret is the file key; it must be set exactly when the data is
// encrypted. name only names the file in errors.
func ParseKeys(name string, data []byte, secret string) (Keys, error) {
	if len(data) > len(opensslMagic) && bytes.HasPrefix(data, []byte(opensslMagic)) {
		if secret == "" {
			return nil, fmt.Errorf("key file %s: encrypted (it starts with \"Salted__\"), but no key-file-key-file is set", name)
		}
		plain, err := DecryptKeyFile(data, secret)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", name, err)
		}
		data = plain
	} else if secret != "" {
		return nil, fmt.Errorf("key file %s: %w", name, ErrNotEncrypted)
	}
	return parseKeyLines(name, data)
}

// parseKeyLines reads "<id>;<hex key>" lines as parser.cc's parse_line
// does: leading blanks are skipped, a line that is empty or starts with
// '#' is a comment, an id is decimal in 1..2^32-1, the key is 16, 24 or 32
// bytes of hex, and whatever follows the key up to the end of the line
// (that is not a hex digit) is ignored. A later line with the same id
// replaces the earlier key. Key 1 must be there: MariaDB uses it for the
// binlog and for its own system data, and refuses a file without it, so
// replink refuses the same files MariaDB does.
func parseKeyLines(name string, data []byte) (Keys, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i] // MariaDB reads the file as a C string
	}
	keys := Keys{}
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		id, key, col, reason := parseKeyLine(line)
		if reason != "" {
			return nil, &SyntaxError{File: name, Line: n, Column: col + 1, Reason: reason}
		}
		if key != nil {
			keys[id] = key
		}
	}
	if _, ok := keys[1]; !ok {
		return nil, &SyntaxError{File: name, Reason: "System key id 1 is missing"}
	}
	return keys, nil
}

// parseKeyLine returns the line's id and key (nil key for a comment), or
// the reason it is refused and the 0-based column where.
func parseKeyLine(line []byte) (id uint32, key []byte, col int, reason string) {
	p := 0
	for p < len(line) && isSpace(line[p]) {
		p++
	}
	if p == len(line) || line[p] == '#' {
		return 0, nil, 0, ""
	}
	if !isDigit(line[p]) {
		return 0, nil, p, "Syntax error"
	}
	var v uint64
	for p < len(line) && isDigit(line[p]) {
		v = v*10 + uint64(line[p]-'0')
		if v > 1<<32-1 {
			return 0, nil, p, "Invalid key id"
		}
		p++
	}
	if v < 1 {
		return 0, nil, p, "Invalid key id"
	}
	if p == len(line) || line[p] != ';' {
		return 0, nil, p, "Syntax error"
	}
	p++
	key = make([]byte, 0, 32)
	for p+1 < len(line) && isHex(line[p]) && isHex(line[p+1]) && len(key) < 32 {
		key = append(key, unhex(line[p])<<4|unhex(line[p+1]))
		p += 2
	}
	if (p < len(line) && isHex(line[p])) || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
		return 0, nil, p, "Invalid key"
	}
	return uint32(v), key, 0, ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// DecryptKeyFile decrypts what `openssl enc -aes-256-cbc -md sha1 -pass
// pass:SECRET` wrote (without -pbkdf2, the only form MariaDB 10.11 reads):
// "Salted__", an 8-byte salt, then AES-256-CBC with PKCS#7 padding under
// the key and IV of EVP_BytesToKey(SHA-1, one iteration).
func DecryptKeyFile(data []byte, secret string) ([]byte, error) {
	hdr := len(opensslMagic) + opensslSaltLen
	if len(data) < hdr || !bytes.HasPrefix(data, []byte(opensslMagic)) {
		return nil, ErrNotEncrypted
	}
	body := data[hdr:]
	if len(body) == 0 || len(body)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w (ciphertext of %d bytes is not whole AES blocks)", ErrWrongFileKey, len(body))
	}
	key, iv := bytesToKey([]byte(secret), data[len(opensslMagic):hdr])
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(body))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, body)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, ErrWrongFileKey
	}
	for _, c := range plain[len(plain)-pad:] {
		if int(c) != pad {
			return nil, ErrWrongFileKey
		}
	}
	return plain[:len(plain)-pad], nil
}

// EncryptKeyFile is DecryptKeyFile's inverse, for tests and tools: the
// bytes `openssl enc -aes-256-cbc -md sha1 -pass pass:SECRET -S SALT`
// writes.
func EncryptKeyFile(plain []byte, secret string, salt [opensslSaltLen]byte) []byte {
	key, iv := bytesToKey([]byte(secret), salt[:])
	block, _ := aes.NewCipher(key) // a 32-byte key never fails
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append(slices.Clone(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	out := append([]byte(opensslMagic), salt[:]...)
	return append(out, buf...)
}

// bytesToKey is OpenSSL's EVP_BytesToKey with SHA-1 and one iteration,
// for a 32-byte key and a 16-byte IV: D1 = SHA1(secret || salt),
// Di = SHA1(Di-1 || secret || salt), key || iv = D1 || D2 || D3 ...
func bytesToKey(secret, salt []byte) (key, iv []byte) {
	var out, d []byte
	for len(out) < 32+16 {
		h := sha1.New()
		h.Write(d)
		h.Write(secret)
		h.Write(salt)
		d = h.Sum(nil)
		out = append(out, d...)
	}
	return out[:32], out[32:48]
}
