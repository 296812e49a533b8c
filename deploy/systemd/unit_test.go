package systemd

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// unit is a systemd unit file: section → key → every assignment, in order.
type unit map[string]map[string][]string

// parseUnit reads a unit file as systemd does: [Section] headers, Key=Value
// lines, # and ; comments, and lines continued with a trailing backslash.
func parseUnit(name string) (unit, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n, pending := 0, ""; sc.Scan(); {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("%s:%d: not a Key=Value line in a section: %q", name, n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return u, nil
}

// last is a key's effective value for keys where the last assignment wins.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// list is a list-valued key's effective value: an empty assignment resets
// the list, later ones add to it.
func (u unit) list(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		if v == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func isYes(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

const dataDir = "/var/lib/replink"

// TestServiceUnit: replink.service runs replink unprivileged, reloads on
// SIGHUP, restarts on failure but not on a bad configuration (exit 2),
// and has the hardening the deployment promises.
func TestServiceUnit(t *testing.T) {
	u, err := parseUnit("replink.service")
	if err != nil {
		t.Fatal(err)
	}
	yes := func(key string) func() error {
		return func() error {
			if v, _ := u.last("Service", key); !isYes(v) {
				return fmt.Errorf("%s=%q, want yes", key, v)
			}
			return nil
		}
	}
	equals := func(key, want string) func() error {
		return func() error {
			if v, _ := u.last("Service", key); v != want {
				return fmt.Errorf("%s=%q, want %q", key, v, want)
			}
			return nil
		}
	}
	for _, c := range []struct {
		name  string
		check func() error
	}{
		{"runs replink run -c /etc/replink/replink.toml", func() error {
			v, _ := u.last("Service", "ExecStart")
			f := strings.Fields(v)
			if len(f) != 4 || !strings.HasSuffix(f[0], "/replink") || !slices.Equal(f[1:], []string{"run", "-c", "/etc/replink/replink.toml"}) {
				return fmt.Errorf("ExecStart=%q", v)
			}
			return nil
		}},
		{"as a non-root user", func() error {
			user, _ := u.last("Service", "User")
			dyn, _ := u.last("Service", "DynamicUser")
			if isYes(dyn) || user != "" && user != "root" && user != "0" {
				return nil
			}
			return fmt.Errorf("User=%q DynamicUser=%q: want a non-root User or DynamicUser=yes", user, dyn)
		}},
		{"tells systemd when it is ready (sd_notify)", equals("Type", "notify")},
		{"only replink itself notifies", equals("NotifyAccess", "main")},
		{"reloads with SIGHUP", equals("ExecReload", "/bin/kill -HUP $MAINPID")},
		{"restarts on failure", equals("Restart", "on-failure")},
		{"but not on a bad configuration", func() error {
			if !slices.Contains(u.list("Service", "RestartPreventExitStatus"), "2") {
				return fmt.Errorf("RestartPreventExitStatus=%q, want 2 in it", u.list("Service", "RestartPreventExitStatus"))
			}
			return nil
		}},
		{"has a descriptor limit", func() error {
			if v, ok := u.last("Service", "LimitNOFILE"); !ok || v == "" {
				return fmt.Errorf("no LimitNOFILE")
			}
			return nil
		}},
		{"NoNewPrivileges", yes("NoNewPrivileges")},
		{"ProtectSystem=strict", equals("ProtectSystem", "strict")},
		{"writes only its data-dir", func() error {
			if !slices.Contains(u.list("Service", "ReadWritePaths"), dataDir) {
				return fmt.Errorf("ReadWritePaths=%q, want %s in it", u.list("Service", "ReadWritePaths"), dataDir)
			}
			if sd := u.list("Service", "StateDirectory"); !slices.Equal(sd, []string{"replink"}) {
				return fmt.Errorf("StateDirectory=%q, want replink (%s, made and owned for the user)", sd, dataDir)
			}
			return nil
		}},
		{"PrivateTmp", yes("PrivateTmp")},
		{"no capabilities", func() error {
			for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
				if _, set := u.last("Service", k); !set || len(u.list("Service", k)) > 0 {
					return fmt.Errorf("%s=%q, want it set and empty", k, u.list("Service", k))
				}
			}
			return nil
		}},
		{"ProtectHome", yes("ProtectHome")},
		{"ProtectKernelTunables", yes("ProtectKernelTunables")},
		{"ProtectKernelModules", yes("ProtectKernelModules")},
		{"ProtectControlGroups", yes("ProtectControlGroups")},
		{"PrivateDevices", yes("PrivateDevices")},
		{"LockPersonality", yes("LockPersonality")},
		{"MemoryDenyWriteExecute", yes("MemoryDenyWriteExecute")},
		{"RestrictNamespaces", yes("RestrictNamespaces")},
		{"RestrictSUIDSGID", yes("RestrictSUIDSGID")},
		{"SystemCallArchitectures=native", equals("SystemCallArchitectures", "native")},
		{"only IP and Unix sockets", func() error {
			got := u.list("Service", "RestrictAddressFamilies")
			slices.Sort(got)
			if !slices.Equal(got, []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
				return fmt.Errorf("RestrictAddressFamilies=%q", got)
			}
			return nil
		}},
		{"installed for multi-user.target", func() error {
			if !slices.Contains(u.list("Install", "WantedBy"), "multi-user.target") {
				return fmt.Errorf("WantedBy=%q", u.list("Install", "WantedBy"))
			}
			return nil
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSysusers: replink.sysusers makes the unit's user, with the data-dir
// as its home.
func TestSysusers(t *testing.T) {
	u, err := parseUnit("replink.service")
	if err != nil {
		t.Fatal(err)
	}
	user, _ := u.last("Service", "User")
	data, err := os.ReadFile("replink.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "u" && f[1] == user {
			if !strings.Contains(line, " "+dataDir+" ") {
				t.Errorf("replink.sysusers: %q: want home %s", line, dataDir)
			}
			return
		}
	}
	t.Errorf("replink.sysusers makes no user %q (the unit's User=)", user)
}
