package container

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const top = "../../"

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, USER...
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	from, name string
	body       []instruction
}

// parseDockerfile splits a Dockerfile into stages.
func parseDockerfile(name string) ([]stage, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var stages []stage
	var cur strings.Builder
	flush := func() error {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("%s: %s before the first FROM", name, in.cmd)
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") {
			continue
		}
		if c, ok := strings.CutSuffix(t, `\`); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(t)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return stages, flush()
}

// all returns the arguments of every instruction cmd in s.
func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// last returns the arguments of the last instruction cmd in s.
func (s stage) last(cmd string) string {
	a := s.all(cmd)
	if len(a) == 0 {
		return ""
	}
	return a[len(a)-1]
}

// execForm decodes an instruction's JSON (exec) form.
func execForm(args string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		return nil, fmt.Errorf("%q is not in exec form: %w", args, err)
	}
	return v, nil
}

// goLine is go.mod's go directive (1.26 from "go 1.26" or "go 1.26.0").
func goLine() (string, error) {
	data, err := os.ReadFile(top + "go.mod")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(data))
	if m == nil {
		return "", fmt.Errorf("go.mod: no go line")
	}
	return m[1], nil
}

// The SPEC's default ports of [relay] listen and [metrics] listen. (The
// defaults are not read from the config package, so that this test does
// not build the daemon's packages.)
const relayPort, metricsPort = "3307", "9105"

// TestDockerfile: a static replink built by make build, run by an
// unprivileged user, with the relay log on a volume.
func TestDockerfile(t *testing.T) {
	stages, err := parseDockerfile(top + "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a builder and a final stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	for _, c := range []struct {
		name  string
		check func() error
	}{
		{"the builder is golang at go.mod's version", func() error {
			v, err := goLine()
			if err != nil {
				return err
			}
			if want := "golang:" + v; build.from != want && !strings.HasPrefix(build.from, want+"-") && !strings.HasPrefix(build.from, want+".") {
				return fmt.Errorf("FROM %s, want %s (go.mod's go line)", build.from, want)
			}
			return nil
		}},
		{"the builder runs make build with CGO_ENABLED=0", func() error {
			for _, run := range build.all("RUN") {
				if strings.Contains(run, "CGO_ENABLED=0 make build") {
					return nil
				}
			}
			return fmt.Errorf("no RUN CGO_ENABLED=0 make build in %q", build.all("RUN"))
		}},
		{"the final stage is not the Go toolchain", func() error {
			if strings.HasPrefix(final.from, "golang") {
				return fmt.Errorf("FROM %s", final.from)
			}
			return nil
		}},
		{"it copies the builder's bin/replink", func() error {
			for _, cp := range final.all("COPY") {
				if strings.HasPrefix(cp, "--from="+build.name+" ") && strings.Contains(cp, "/bin/replink ") {
					return nil
				}
			}
			return fmt.Errorf("no COPY --from=%s .../bin/replink in %q", build.name, final.all("COPY"))
		}},
		{"it runs as a numeric non-root user", func() error {
			user := final.last("USER")
			uid, _, _ := strings.Cut(user, ":")
			if !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) || strings.TrimLeft(uid, "0") == "" {
				return fmt.Errorf("USER %q: want a numeric uid other than 0 (runAsNonRoot checks it)", user)
			}
			return nil
		}},
		{"the data-dir is a volume", func() error {
			if v := final.all("VOLUME"); !slices.Contains(v, "/var/lib/replink") && !slices.Contains(v, `["/var/lib/replink"]`) {
				return fmt.Errorf("VOLUME %q, want /var/lib/replink", v)
			}
			return nil
		}},
		{"it exposes the relay and metrics ports", func() error {
			var exposed []string
			for _, e := range final.all("EXPOSE") {
				exposed = append(exposed, strings.Fields(e)...)
			}
			for _, p := range []string{relayPort, metricsPort} {
				if !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
					return fmt.Errorf("EXPOSE %q lacks %s", exposed, p)
				}
			}
			return nil
		}},
		{"it runs replink run -c /etc/replink/replink.toml", func() error {
			ep, err := execForm(final.last("ENTRYPOINT"))
			if err != nil {
				return fmt.Errorf("ENTRYPOINT: %w", err)
			}
			cmd, err := execForm(final.last("CMD"))
			if err != nil {
				return fmt.Errorf("CMD: %w", err)
			}
			if len(ep) != 1 || !strings.HasSuffix(ep[0], "/replink") || !slices.Equal(cmd, []string{"run", "-c", "/etc/replink/replink.toml"}) {
				return fmt.Errorf("ENTRYPOINT %q CMD %q", ep, cmd)
			}
			return nil
		}},
		{"its health check is replink status -c /etc/replink/replink.toml", func() error {
			hc := final.last("HEALTHCHECK")
			opts, form, ok := strings.Cut(hc, "CMD ")
			if !ok {
				return fmt.Errorf("HEALTHCHECK %q: want HEALTHCHECK [options] CMD [...]", hc)
			}
			cmd, err := execForm(strings.TrimSpace(form))
			if err != nil {
				return fmt.Errorf("HEALTHCHECK: %w", err)
			}
			if len(cmd) < 2 || !strings.HasSuffix(cmd[0], "/replink") || !slices.Equal(cmd[1:], []string{"status", "-c", "/etc/replink/replink.toml"}) {
				return fmt.Errorf("HEALTHCHECK CMD %q, want replink status -c /etc/replink/replink.toml", cmd)
			}
			for _, o := range strings.Fields(opts) {
				if !regexp.MustCompile(`^--(interval|timeout|start-period|start-interval|retries)=\w+$`).MatchString(o) {
					return fmt.Errorf("HEALTHCHECK option %q", o)
				}
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

// TestDockerignore: the host's .git and bin/ (a binary that may not be
// static) stay out of the build context.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(top + ".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{".git", "bin", "demo"} {
		if !slices.Contains(lines, want) && !slices.Contains(lines, "/"+want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// TestComposeBuildsReplink: docker-compose.yml builds replink from the
// Dockerfile instead of mounting the host's bin/replink into another image.
func TestComposeBuildsReplink(t *testing.T) {
	data, err := os.ReadFile(top + "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image   string `json:"image"`
			Build   any    `json:"build"`
			Volumes []any  `json:"volumes"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	r, ok := compose.Services["replink"]
	if !ok {
		t.Fatal("docker-compose.yml: no replink service")
	}
	if r.Build != "." || r.Image != "" {
		t.Errorf("replink service: build %v, image %q: want build: . and no image", r.Build, r.Image)
	}
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			if str, ok := v.(string); ok && strings.Contains(str, "bin/replink") {
				t.Errorf("service %s mounts %s: use the image", name, str)
			}
		}
	}
}
