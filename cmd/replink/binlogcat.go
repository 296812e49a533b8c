package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/binlog/atrest"
	"github.com/replink/replink/config"
)

// cmdBinlog is `replink binlog cat`: relay files as plaintext binlog on
// stdout, for `mariadb-binlog -` (one file per run: each starts with the
// binlog magic).
func cmdBinlog(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "cat" {
		return usageErr("want: replink binlog cat [-c FILE | --key-file F [--key-file-key-file P]] FILE...")
	}
	fs := newFlagSet("binlog cat")
	cfgFile := fs.String("c", "", "replink's configuration: its [relay] key-file and key-file-key-file")
	keyFile := fs.String("key-file", "", "a key file in file_key_management's format (instead of -c)")
	passFile := fs.String("key-file-key-file", "", "the password of an encrypted key file")
	if err := parseFlags(fs, args[1:], stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErr("no relay file given")
	}
	var keys atrest.Keys
	switch {
	case *cfgFile != "" && *keyFile != "":
		return usageErr("-c and --key-file: give one")
	case *cfgFile != "":
		c := config.Defaults()
		if err := c.LoadFile(*cfgFile); err != nil {
			return err
		}
		k, err := c.AtRestKeys()
		if err != nil {
			return err
		}
		keys = k
	case *keyFile != "":
		k, err := atrest.LoadKeys(*keyFile, *passFile)
		if err != nil {
			return usageErr("--key-file: %v", err)
		}
		keys = k
	}
	w := bufio.NewWriterSize(stdout, 1<<20)
	for _, name := range fs.Args() {
		if err := catFile(w, name, keys); err != nil {
			return err
		}
	}
	return w.Flush()
}

// catFile writes relay file name decrypted to w: as it is when it has no
// record beside it (never encrypted).
func catFile(w io.Writer, name string, keys atrest.Keys) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	rec, err := os.ReadFile(name + binlog.SideSuffix)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case keys == nil:
		return fmt.Errorf("%s is encrypted at rest (%s): give -c FILE or --key-file", name, name+binlog.SideSuffix)
	default:
		c, err := atrest.Opener(keys).Cipher(name, rec)
		if err != nil {
			return err
		}
		if len(data) > len(binlog.Magic) {
			c.Decrypt(data[len(binlog.Magic):], int64(len(binlog.Magic)))
		}
		// What comes out must be the master's bytes: a wrong key or a
		// damaged file is said, not printed.
		if err := binlog.VerifyFile(data); err != nil {
			return fmt.Errorf("%s: decrypted, %w", name, err)
		}
	}
	_, err = w.Write(data)
	return err
}
