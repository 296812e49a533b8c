package status

import (
	"html/template"
	"io"
	"time"

	"github.com/replink/replink/tlsutil"
)

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"days": func(c tlsutil.CertInfo, now time.Time) float64 { return c.DaysLeft(now) },
	"expiryClass": func(c tlsutil.CertInfo, now time.Time) string {
		switch d := c.DaysLeft(now); {
		case d < 7:
			return "bad"
		case d < 21:
			return "warn"
		}
		return "ok"
	},
	"stateClass": func(s string) string {
		if s == "streaming" {
			return "ok"
		}
		return "bad"
	},
	"ago":  func(t, now time.Time) string { return now.Sub(t).Round(time.Second).String() },
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>replink: {{.Master.State}}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:70em;color:#222;padding:0 1em}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:.25em .6em;border-bottom:1px solid #eee;vertical-align:top}
th{color:#555;font-weight:600} .k{color:#555;width:12em}
.ok{color:#0a7a2f;font-weight:600} .warn{color:#a15c00;font-weight:600} .bad{color:#c0141b;font-weight:600}
.badge{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff}
.badge.ok{background:#0a7a2f}.badge.bad{background:#c0141b}
code{font-size:.92em} .muted{color:#777;font-size:.9em}
</style></head><body>
<h1>replink <span class="badge {{stateClass .Master.State}}">{{.Master.State}}</span></h1>
<div class="muted">version {{.Version}}, up {{.Uptime}}, {{date .Now}} — refreshes every 10 s — <a href="/status">/status</a> <a href="/metrics">/metrics</a></div>

<h2>Master link</h2>
<table>
<tr><td class="k">state</td><td class="{{stateClass .Master.State}}">{{.Master.State}} for {{ago .Master.Since .Now}}</td></tr>
<tr><td class="k">server</td><td>{{if .Master.Master}}<code>{{.Master.Master}}</code> {{end}}{{.Master.ServerVersion}} {{if .Master.Flavor}}({{.Master.Flavor}}){{end}}</td></tr>
{{range .Master.Switches}}<tr><td class="k">switched</td><td>{{date .Time}}: from <code>{{.From}}</code> to <code>{{.To}}</code> (server_id {{.ServerID}})</td></tr>
{{end}}
<tr><td class="k">TLS</td><td>{{if .Master.TLSVersion}}{{.Master.TLSVersion}} <code>{{.Master.Cipher}}</code>{{else if eq .Master.State "streaming"}}<span class="bad">none: plaintext</span>{{else}}—{{end}}</td></tr>
<tr><td class="k">position</td><td><code>{{.Relay.Position}}</code> (durable <code>{{.Relay.Durable}}</code>)</td></tr>
<tr><td class="k">lag</td><td>{{printf "%.1f" .LagSec}} s</td></tr>
<tr><td class="k">reconnects</td><td>{{.Master.Reconnects}}</td></tr>
{{if .Master.PlaintextCopyOfEncrypted}}<tr><td class="k">at rest</td><td class="bad">the master encrypts its binlog files; this relay log holds the same rows in plaintext</td></tr>{{end}}
{{if .Master.LastError}}<tr><td class="k">last error</td><td class="bad">{{.Master.LastReason}}: {{.Master.LastError}}</td></tr>{{end}}
</table>

<h2>Certificates</h2>
<table><tr><th>where</th><th>subject</th><th>issuer</th><th>SANs</th><th>expires</th><th>days left</th></tr>
{{range $i, $c := .Master.PeerChain}}<tr><td>master chain [{{$i}}]</td><td><code>{{$c.Subject}}</code></td><td><code>{{$c.Issuer}}</code></td><td>{{range $c.SANs}}{{.}} {{end}}</td><td>{{date $c.NotAfter}}</td><td class="{{expiryClass $c $.Now}}">{{printf "%.0f" (days $c $.Now)}}</td></tr>
{{end}}{{range .Local}}<tr><td>replink {{.Role}}</td><td><code>{{.Subject}}</code></td><td><code>{{.Issuer}}</code></td><td>{{range .SANs}}{{.}} {{end}}</td><td>{{date .NotAfter}}</td><td class="{{expiryClass . $.Now}}">{{printf "%.0f" (days . $.Now)}}</td></tr>
{{end}}</table>

<h2>Slaves ({{len .Slaves}})</h2>
{{if .Slaves}}<table><tr><th>server_id</th><th>user</th><th>peer</th><th>TLS</th><th>position</th><th>behind</th><th>mode</th></tr>
{{range .Slaves}}<tr><td>{{.ServerID}}</td><td>{{.User}}</td><td>{{.Peer}}</td><td>{{if .TLS}}{{.TLS}}{{else}}<span class="bad">plaintext</span>{{end}}</td><td><code>{{.Position}}</code></td><td>{{.LagBytes}} bytes</td><td>{{if .GTID}}GTID{{else}}file/position{{end}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No slave is dumping from replink.</p>{{end}}
{{if .Away}}<h3>Away ({{len .Away}}): their files are kept until they return or are forgotten</h3>
<table><tr><th>server_id</th><th>user</th><th>peer</th><th>away since</th><th>position</th><th>behind</th><th>kept until</th></tr>
{{range .Away}}<tr><td>{{.ServerID}}</td><td>{{.User}}</td><td>{{.Peer}}</td><td>{{date .AwaySince}}</td><td><code>{{.Position}}</code></td><td>{{.LagBytes}} bytes</td><td>{{date .KeptUntil}}</td></tr>
{{end}}</table>{{end}}

<h2>Recent failures</h2>
{{if .Master.Failures}}<table><tr><th>when</th><th>reason</th><th>what happened</th><th>fix</th></tr>
{{range .Master.Failures}}<tr><td>{{date .Time}}</td><td class="bad">{{.Reason}}</td><td>{{.Error}}</td><td>{{.Hint}}</td></tr>
{{end}}</table>{{else}}<p class="muted">None since start.</p>{{end}}

<h2>Recent refusals ({{len .Refusals}})</h2>
{{if .Refusals}}<table><tr><th>when</th><th>peer</th><th>user</th><th>reason</th><th>why</th></tr>
{{range .Refusals}}<tr><td>{{date .Time}}</td><td>{{.Peer}}</td><td>{{.User}}</td><td class="bad">{{.Reason}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No connection refused since start.</p>{{end}}

<h2>Relay log</h2>
<p><code>{{.Relay.DataDir}}</code>: {{range .Relay.Files}}<code>{{.}}</code> {{end}}</p>
</body></html>
`))

// WriteHTML renders the status page.
func WriteHTML(w io.Writer, d Doc) error { return page.Execute(w, d) }
