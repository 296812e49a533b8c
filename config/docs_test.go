package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestEveryKeyIsDocumented: every key the loader knows (the TOML tags of
// Config) has a row in docs/configuration.md under its section's heading
// ("[master]", "[relay]", "[[relay.users]]", ...).
func TestEveryKeyIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{} // "[master]" or "[[relay.users]]" -> text under it
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			cur = ""
			if h := strings.TrimLeft(line, "# "); strings.HasPrefix(h, "[") {
				cur, _, _ = strings.Cut(h, ":")
			}
			continue
		}
		if cur != "" {
			sections[cur] += line + "\n"
		}
	}
	keys := tomlKeys(reflect.TypeOf(Config{}), "")
	if len(keys) < 40 {
		t.Fatalf("found %d keys in Config, want them all: %v", len(keys), keys)
	}
	for _, k := range keys {
		sect, leaf := k[:strings.LastIndex(k, ".")], k[strings.LastIndex(k, ".")+1:]
		heading := "[" + sect + "]"
		if sect == "relay.users" {
			heading = "[[relay.users]]"
		}
		text, ok := sections[heading]
		if !ok {
			t.Errorf("key %s: docs/configuration.md has no section %q", k, heading)
			continue
		}
		if !strings.Contains(text, "| `"+leaf+"`") && !strings.Contains(text, ", `"+leaf+"`") {
			t.Errorf("key %s: no row for `%s` under %s in docs/configuration.md", k, leaf, heading)
		}
	}
}

// tomlKeys lists the dotted TOML keys of t's fields.
func tomlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, tomlKeys(ft, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}
