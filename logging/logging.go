// Package logging builds replink's hclog logger from the [log] section
// and adapts it to the *slog.Logger that go-mysql wants.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// New makes the root logger. level is trace|debug|info|warn|error, format
// text|json.
func New(w io.Writer, level, format string) (hclog.Logger, error) {
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, fmt.Errorf("unknown log level %q (trace, debug, info, warn, error)", level)
	}
	if format != "text" && format != "json" && format != "" {
		return nil, fmt.Errorf("unknown log format %q (text, json)", format)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "replink", Level: lv, Output: w, JSONFormat: format == "json"}), nil
}

// Slog adapts an hclog logger to log/slog for the libraries that log
// through it (exporter-toolkit; go-mysql's BinlogSyncer in the tests).
// Their messages are demoted to debug: replink logs what matters itself,
// with the reason.
func Slog(l hclog.Logger) *slog.Logger { return slog.New(&handler{l: l}) }

type handler struct {
	l     hclog.Logger
	attrs []any
	group string
}

func (h *handler) Enabled(context.Context, slog.Level) bool {
	return h.l.IsDebug()
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	args := append([]any(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		if a.Key == "config" {
			return true // go-mysql logs its whole config; keep it out
		}
		args = append(args, key, a.Value.String())
		return true
	})
	h.l.Debug(r.Message, append(args, "level", r.Level.String())...)
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]any(nil), h.attrs...)
	for _, a := range as {
		n.attrs = append(n.attrs, a.Key, a.Value.String())
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	n := *h
	n.group = name
	return &n
}
