package relay

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRefusalsRing: the ring keeps the last maxRefusals, newest first,
// with what a client sent made printable and bounded.
func TestRefusalsRing(t *testing.T) {
	s := &Server{m: NewMetrics(prometheus.NewRegistry())}
	for i := range maxRefusals + 5 {
		s.refuse(fmt.Sprintf("127.0.0.1:%d", 1000+i), "u\x1b[31m"+strings.Repeat("x", 100), "auth", "why")
	}
	got := s.Refusals()
	if len(got) != maxRefusals || got[0].Peer != fmt.Sprintf("127.0.0.1:%d", 1000+maxRefusals+4) || got[len(got)-1].Peer != "127.0.0.1:1005" {
		t.Fatalf("%d refusals, newest %s, oldest %s; want %d, the newest first", len(got), got[0].Peer, got[len(got)-1].Peer, maxRefusals)
	}
	if u := got[0].User; strings.ContainsRune(u, 0x1b) || len([]rune(u)) != 65 || !strings.HasPrefix(u, "u?[31m") {
		t.Fatalf("user %q: want control characters replaced and 64 runes kept", u)
	}
}
