package binlog

import "testing"

func TestFileArithmetic(t *testing.T) {
	for _, tc := range []struct {
		name, next string
		ok         bool
	}{
		{"mysql-bin.000012", "mysql-bin.000013", true},
		{"mariadb-bin.000999", "mariadb-bin.001000", true},
		{"mariadb-bin.999999", "mariadb-bin.1000000", true},
		{"binlog.1", "binlog.2", true},
		{"a.b.000001", "a.b.000002", true},
		{"noext", "", false},
		{"trailing.", "", false},
		{"bin.12x", "", false},
	} {
		next, ok := NextFile(tc.name)
		if next != tc.next || ok != tc.ok {
			t.Errorf("NextFile(%q) = %q, %v; want %q, %v", tc.name, next, ok, tc.next, tc.ok)
		}
	}
}

func TestCompareOrdersBySequenceNumber(t *testing.T) {
	for _, tc := range []struct {
		a, b Pos
		want int
	}{
		{Pos{"bin.999999", 4}, Pos{"bin.1000000", 4}, -1}, // numbers, not strings
		{Pos{"bin.000002", 4}, Pos{"bin.000001", 900}, 1},
		{Pos{"bin.000002", 100}, Pos{"bin.000002", 200}, -1},
		{Pos{"bin.000002", 200}, Pos{"bin.000002", 200}, 0},
		{Pos{"a.000009", 4}, Pos{"b.000001", 4}, -1}, // other base names: as strings
	} {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := tc.b.Compare(tc.a); got != -tc.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
