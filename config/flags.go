package config

import (
	"flag"
	"strconv"
)

// MasterFlags are the mysql client's option names as flags.
type MasterFlags struct {
	fs           *flag.FlagSet
	ConfigFile   string
	DefaultsFile string
	GroupSuffix  string
	vals         map[string]*string
}

var masterFlagNames = []string{"host", "port", "user", "password", "password-file", "ssl-mode", "ssl-ca", "ssl-capath", "ssl-cert",
	"ssl-key", "ssl-cipher", "tls-version", "tls-ciphersuites", "ssl-crl", "ssl-crlpath", "server-id", "connect-timeout"}

// shortFlags are the mysql client's one-letter options (-h is the host,
// as for mysql; -help still prints the usage).
var shortFlags = map[string]string{"h": "host", "P": "port", "u": "user", "p": "password"}

// AddMasterFlags registers -c, --defaults-file, --defaults-group-suffix
// and the master options on fs.
func AddMasterFlags(fs *flag.FlagSet) *MasterFlags {
	f := &MasterFlags{fs: fs, vals: map[string]*string{}}
	fs.StringVar(&f.ConfigFile, "c", "", "replink TOML configuration file")
	fs.StringVar(&f.ConfigFile, "config", "", "replink TOML configuration file")
	fs.StringVar(&f.DefaultsFile, "defaults-file", "", "read master options from the [client] group of this my.cnf")
	fs.StringVar(&f.GroupSuffix, "defaults-group-suffix", "", "also read [client<suffix>]")
	for _, n := range masterFlagNames {
		f.vals[n] = fs.String(n, "", "master "+n+" (as the mysql client's --"+n+")")
	}
	for short, long := range shortFlags {
		f.vals[short] = fs.String(short, "", "master "+long+" (as the mysql client's -"+short+")")
	}
	return f
}

// Load builds the configuration: defaults, then my.cnf, then the TOML
// file, then the flags that were set.
func (f *MasterFlags) Load() (*Config, error) {
	c := Defaults()
	if f.DefaultsFile != "" {
		opts, err := ReadMyCnf(f.DefaultsFile, f.GroupSuffix)
		if err != nil {
			return nil, &Error{File: f.DefaultsFile, Err: err}
		}
		if err := c.ApplyMyCnf(f.DefaultsFile, opts); err != nil {
			return nil, err
		}
	}
	if f.ConfigFile != "" {
		if err := c.LoadFile(f.ConfigFile); err != nil {
			return nil, err
		}
	}
	var err error
	f.fs.Visit(func(fl *flag.Flag) {
		v, ok := f.vals[fl.Name]
		if !ok || err != nil {
			return
		}
		m := &c.Master
		name := fl.Name
		if long, ok := shortFlags[name]; ok {
			name = long
		}
		switch name {
		case "host":
			m.Host = *v
		case "port":
			p, perr := strconv.Atoi(*v)
			if perr != nil {
				err = &Error{Key: "--port", Err: perr}
			}
			m.Port = p
		case "user":
			m.User = *v
		case "password-file":
			m.PasswordFile, m.Password = *v, ""
		case "password":
			// As the mysql client takes it; it shows in ps, so the
			// password-file is the better habit.
			m.Password, m.PasswordFile = *v, ""
		case "ssl-mode":
			m.SSLMode = *v
		case "ssl-ca":
			m.SSLCA = *v
		case "ssl-capath":
			m.SSLCAPath = *v
		case "ssl-cert":
			m.SSLCert = *v
		case "ssl-key":
			m.SSLKey = *v
		case "ssl-cipher":
			m.SSLCipher = *v
		case "tls-version":
			m.TLSVersion = *v
		case "tls-ciphersuites":
			m.TLSCiphersuites = *v
		case "ssl-crl":
			m.SSLCRL = *v
		case "ssl-crlpath":
			m.SSLCRLPath = *v
		case "connect-timeout":
			m.ConnectTimeout = *v
		case "server-id":
			id, perr := strconv.ParseUint(*v, 10, 32)
			if perr != nil {
				err = &Error{Key: "--server-id", Err: perr}
			}
			m.ServerID = uint32(id)
		}
	})
	return c, err
}
