package relay

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Refusal is one connection the relay refused, for /status and the
// status page: on-call sees who was turned away and why without the log.
type Refusal struct {
	Time time.Time `json:"time"`
	Peer string    `json:"peer"`
	// User is the account the client named ("" before its login).
	User string `json:"user,omitempty"`
	// Reason is the replink_relay_connections_rejected_total label: auth,
	// require, tls, protocol, limit or timeout.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// maxRefusals is how many recent refusals are kept.
const maxRefusals = 20

// maxRefusalMessage bounds a refusal's message (a client's junk can be
// in an error).
const maxRefusalMessage = 200

// refusals are the most recent refusals, oldest first.
type refusals struct {
	mu   sync.Mutex
	list []Refusal
}

func (r *refusals) add(x Refusal) {
	x.User, x.Message = printable(x.User, 64), printable(x.Message, maxRefusalMessage)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == maxRefusals {
		r.list = slices.Delete(r.list, 0, 1)
	}
	r.list = append(r.list, x)
}

// Refusals are the recent refusals, newest first.
func (s *Server) Refusals() []Refusal {
	s.refused.mu.Lock()
	out := slices.Clone(s.refused.list)
	s.refused.mu.Unlock()
	slices.Reverse(out)
	if out == nil {
		out = []Refusal{}
	}
	return out
}

// refuse counts and keeps a refusal.
func (s *Server) refuse(peer, user, reason, message string) {
	s.m.reject(reason)
	s.refused.add(Refusal{Time: time.Now(), Peer: peer, User: user, Reason: reason, Message: message})
}

// printable is s cut to n runes with what a terminal or a log would
// interpret (control characters, invalid UTF-8) replaced by '?': a user
// name is whatever the client sent.
func printable(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if rs := []rune(s); len(rs) > n {
		s = string(rs[:n]) + "…"
	}
	return s
}
