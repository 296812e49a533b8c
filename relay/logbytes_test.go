package relay

import (
	"testing"
	"time"

	"github.com/replink/replink/binlog"
)

// TestHeldForAbsent: the bytes kept only for absent slaves are the files
// the retention would purge if only connected slaves were kept for, less
// those it purges anyway: the prefix of files older than the cutoff, up
// to the file being written.
func TestHeldForAbsent(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	cutoff := now.Add(-time.Hour)
	old, young := now.Add(-2*time.Hour), now.Add(-time.Minute)
	// Five files of 1, 10, 100, 1000 and 10000 bytes; the last is written.
	files := func(mods ...time.Time) []binlog.FileStat {
		out := make([]binlog.FileStat, len(mods))
		size := int64(1)
		for i, m := range mods {
			out[i] = binlog.FileStat{Name: string(rune('a' + i)), Size: size, ModTime: m, Writing: i == len(mods)-1}
			size *= 10
		}
		return out
	}
	allOld := files(old, old, old, old, young)
	for _, c := range []struct {
		name           string
		files          []binlog.FileStat
		floor, present int
		want           int64
	}{
		{"no slave needs a file", allOld, -1, -1, 0},
		{"only connected slaves, from file 1", allOld, 1, 1, 0},
		{"an absent slave from file 1, no connected slave", allOld, 1, -1, 10 + 100 + 1000},
		{"an absent slave from file 0, a connected one from 2", allOld, 0, 2, 1 + 10},
		{"an absent slave from file 2, a connected one from 2", allOld, 2, 2, 0},
		{"files younger than the cutoff are kept anyway", files(old, old, young, young, young), 0, -1, 1 + 10},
		{"the purge stops at the first young file", files(old, young, old, old, young), 0, -1, 1},
		{"the file being written is never purged", files(old, old), 0, -1, 1},
		{"no files", nil, -1, -1, 0},
		{"an unreadable list keeps every file (floor 0)", allOld, 0, -1, 1 + 10 + 100 + 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := heldForAbsent(c.files, cutoff, c.floor, c.present); got != c.want {
				t.Errorf("heldForAbsent(floor %d, present %d) = %d, want %d", c.floor, c.present, got, c.want)
			}
		})
	}
}
