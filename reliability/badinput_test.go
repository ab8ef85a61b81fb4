//go:build reliability && linux

package reliability

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

const (
	hmacSecret  = "reliability-hmac-secret"
	bearerToken = "reliability-bearer-token"
	bodyLimit   = 256 << 10
)

// badInputExtra configures the sources the catalogue attacks: Alertmanager
// with a 256 KiB body limit, a webhook signed with HMAC-SHA256 (GitHub's
// header and prefix) and one with a bearer token.
const badInputExtra = `alertmanager:
  body_limit: 256KiB
webhooks:
  - name: signed
    preset: plain
    auth:
      type: hmac-sha256
      secret_file: $DIR/hmac-secret
  - name: scripts
    preset: plain
    auth:
      type: bearer
      secret_file: $DIR/bearer-token
`

// request is one entry of the catalogue.
type request struct {
	name   string
	method string // default POST
	path   string // default /api/v1/alertmanager
	header http.Header
	// noContentType leaves Content-Type out instead of application/json.
	noContentType bool
	body          []byte
	want          int
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// alert is a valid Alertmanager payload with field replaced by raw JSON
// (or removed when raw is "").
func alert(field, raw string) []byte {
	fields := []struct{ k, v string }{
		{"version", `"4"`},
		{"status", `"firing"`},
		{"receiver", `"sms"`},
		{"groupKey", `"{}:{alertname=\"Hostile\"}"`},
		{"truncatedAlerts", `0`},
		{"groupLabels", `{"alertname":"Hostile"}`},
		{"commonLabels", `{"alertname":"Hostile"}`},
		{"commonAnnotations", `{}`},
		{"externalURL", `"http://am"`},
		{"alerts", `[{"status":"firing","labels":{"alertname":"Hostile","severity":"critical"},"annotations":{"summary":"hostile input"},"startsAt":"2026-11-26T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f0"}]`},
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, f := range fields {
		v := f.v
		if f.k == field {
			if raw == "" {
				continue
			}
			v = raw
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", f.k, v)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// alertWith is a valid payload whose one alert has the given labels and
// annotations (raw JSON objects).
func alertWith(labels, annotations string) []byte {
	return alert("alerts", `[{"status":"firing","labels":`+labels+`,"annotations":`+annotations+`,"startsAt":"2026-11-26T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f1"}]`)
}

func catalogue() []request {
	nested := func(depth int) []byte {
		return []byte(`{"version":"4","deep":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
	}
	var manyLabels strings.Builder
	manyLabels.WriteString(`{"alertname":"Hostile"`)
	for i := range 3000 {
		fmt.Fprintf(&manyLabels, `,"l%d":"v%d"`, i, i)
	}
	manyLabels.WriteString("}")
	var manyAlerts strings.Builder
	manyAlerts.WriteString("[")
	for i := range 500 {
		if i > 0 {
			manyAlerts.WriteString(",")
		}
		fmt.Fprintf(&manyAlerts, `{"status":"firing","labels":{"alertname":"Hostile","i":"%d"},"annotations":{"summary":"s"},"startsAt":"2026-11-26T03:00:00Z"}`, i)
	}
	manyAlerts.WriteString("]")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(alert("", ""))
	_ = zw.Close()

	plain := []byte(`{"text":"backup failed","labels":{"alertname":"Backup","host":"db-1"}}`)
	signedPath := "/api/v1/webhooks/signed"
	scriptsPath := "/api/v1/webhooks/scripts"
	bearer := hdr("Authorization", "Bearer "+bearerToken)
	signedBody := func(body string) request {
		return request{path: signedPath, body: []byte(body), header: hdr("X-Hub-Signature-256", sign([]byte(body)))}
	}
	with := func(r request, name string, want int) request {
		r.name, r.want = name, want
		return r
	}

	return []request{
		// Not JSON, or not an object.
		{name: "empty body", body: nil, want: 400},
		{name: "whitespace body", body: []byte(" \n\t "), want: 400},
		{name: "truncated JSON", body: []byte(`{"version":"4","alerts":[`), want: 400},
		{name: "JSON null", body: []byte(`null`), want: 400},
		{name: "JSON array", body: []byte(`[]`), want: 400},
		{name: "JSON string", body: []byte(`"firing"`), want: 400},
		{name: "JSON number", body: []byte(`4`), want: 400},
		{name: "trailing garbage", body: append(alert("", ""), []byte(" {}")...), want: 400},
		{name: "single quotes", body: []byte(`{'version':'4'}`), want: 400},
		{name: "NaN literal", body: []byte(`{"version":"4","truncatedAlerts":NaN}`), want: 400},
		{name: "gzip body without decoding", header: hdr("Content-Encoding", "gzip"), body: gz.Bytes(), want: 400},
		// Deep nesting: Go's decoder stops at depth 10000.
		{name: "nesting 20000 deep", body: nested(20000), want: 400},
		{name: "nesting 100000 deep", body: nested(100000), want: 400},
		{name: "nested objects as labels", body: alertWith(`{"alertname":{"a":{"b":{"c":"d"}}}}`, `{}`), want: 400},
		// Size.
		{name: "body over the limit", body: append(alert("commonAnnotations", `{"x":"`+strings.Repeat("A", bodyLimit)+`"}`), '\n'), want: 413},
		{name: "body of 4 MiB", body: bytes.Repeat([]byte("{"), 4<<20), want: 413},
		// Version.
		{name: "version missing", body: alert("version", ""), want: 400},
		{name: "version 3", body: alert("version", `"3"`), want: 400},
		{name: "version as number", body: alert("version", `4`), want: 400},
		{name: "version with space", body: alert("version", `"4 "`), want: 400},
		// Alerts.
		{name: "alerts missing", body: alert("alerts", ""), want: 400},
		{name: "alerts empty", body: alert("alerts", `[]`), want: 400},
		{name: "alerts null", body: alert("alerts", `null`), want: 400},
		{name: "alerts an object", body: alert("alerts", `{}`), want: 400},
		{name: "alerts of strings", body: alert("alerts", `["a","b"]`), want: 400},
		{name: "alert without labels", body: alertWith(`{}`, `{}`), want: 400},
		{name: "labels an array", body: alertWith(`["alertname"]`, `{}`), want: 400},
		{name: "label value a number", body: alertWith(`{"alertname":5}`, `{}`), want: 400},
		{name: "annotations a string", body: alertWith(`{"alertname":"Hostile"}`, `"summary"`), want: 400},
		{name: "alert status unknown", body: alert("alerts", `[{"status":"exploded","labels":{"alertname":"Hostile"}}]`), want: 400},
		{name: "startsAt not a time", body: alert("alerts", `[{"status":"firing","labels":{"alertname":"Hostile"},"startsAt":"yesterday"}]`), want: 400},
		// Other fields.
		{name: "status unknown", body: alert("status", `"bogus"`), want: 400},
		{name: "status a number", body: alert("status", `1`), want: 400},
		{name: "truncatedAlerts negative", body: alert("truncatedAlerts", `-1`), want: 400},
		{name: "truncatedAlerts a string", body: alert("truncatedAlerts", `"5"`), want: 400},
		{name: "truncatedAlerts huge", body: alert("truncatedAlerts", `1e400`), want: 400},
		{name: "groupKey an object", body: alert("groupKey", `{"k":"v"}`), want: 400},
		{name: "externalURL an array", body: alert("externalURL", `["http://am"]`), want: 400},
		{name: "commonLabels a string", body: alert("commonLabels", `"alertname=Hostile"`), want: 400},
		// Hostile but valid: accepted, and the SMS still fits (the fake
		// refuses non-GSM-7 text, and the default max_segments holds).
		{name: "label value of 200 KB", body: alertWith(`{"alertname":"Hostile","blob":"`+strings.Repeat("x", 200<<10)+`"}`, `{"summary":"`+strings.Repeat("y", 10<<10)+`"}`), want: 202},
		{name: "3000 labels", body: alertWith(manyLabels.String(), `{}`), want: 202},
		{name: "500 alerts", body: alert("alerts", manyAlerts.String()), want: 202},
		{name: "emoji and RTL text", body: alertWith(`{"alertname":"Hostile"}`, `{"summary":"🔥 דיסק מלא \u202e gnp.exe 😀 Ωmega"}`), want: 202},
		{name: "control characters and NUL", body: alertWith(`{"alertname":"Hostile"}`, `{"summary":"a\u0000b\u0007c\u001bd"}`), want: 202},
		{name: "invalid UTF-8 bytes", body: alertWith(`{"alertname":"Hostile"}`, "{\"summary\":\"bad \xff\xfe bytes\"}"), want: 202},
		// Content type.
		{name: "content type text/plain", header: hdr("Content-Type", "text/plain"), body: alert("", ""), want: 415},
		{name: "content type form", header: hdr("Content-Type", "application/x-www-form-urlencoded"), body: alert("", ""), want: 415},
		{name: "content type multipart", header: hdr("Content-Type", "multipart/form-data; boundary=x"), body: alert("", ""), want: 415},
		{name: "content type malformed", header: hdr("Content-Type", "application/json;;;=="), body: alert("", ""), want: 415},
		// Method and path.
		{name: "GET the webhook", method: http.MethodGet, want: 405},
		{name: "PUT the webhook", method: http.MethodPut, body: alert("", ""), want: 405},
		{name: "DELETE the webhook", method: http.MethodDelete, want: 405},
		{name: "PATCH the webhook", method: http.MethodPatch, body: alert("", ""), want: 405},
		{name: "path with a suffix", path: "/api/v1/alertmanager/x", body: alert("", ""), want: 404},
		{name: "Alertmanager's own API path", path: "/api/v2/alerts", body: alert("", ""), want: 404},
		{name: "path in upper case", path: "/API/V1/ALERTMANAGER", body: alert("", ""), want: 404},
		{name: "unknown webhook source", path: "/api/v1/webhooks/nope", body: plain, want: 404},
		{name: "webhook source with dots", path: "/api/v1/webhooks/..%2F..%2Fetc%2Fpasswd", body: plain, want: 404},
		{name: "webhook source of 10 KB", path: "/api/v1/webhooks/" + strings.Repeat("a", 10<<10), body: plain, want: 404},
		{name: "GET a webhook source", method: http.MethodGet, path: signedPath, want: 405},
		// HMAC-signed source.
		{name: "hmac: no signature", path: signedPath, body: plain, want: 401},
		{name: "hmac: wrong signature", path: signedPath, body: plain, header: hdr("X-Hub-Signature-256", "sha256="+strings.Repeat("ab", 32)), want: 401},
		{name: "hmac: signature not hex", path: signedPath, body: plain, header: hdr("X-Hub-Signature-256", "sha256=zz-not-hex"), want: 401},
		{name: "hmac: no prefix", path: signedPath, body: plain, header: hdr("X-Hub-Signature-256", strings.TrimPrefix(sign(plain), "sha256=")), want: 401},
		{name: "hmac: signature of another body", path: signedPath, body: plain, header: hdr("X-Hub-Signature-256", sign([]byte(`{"text":"other"}`))), want: 401},
		{name: "hmac: empty signature header", path: signedPath, body: plain, header: hdr("X-Hub-Signature-256", ""), want: 401},
		{name: "hmac: signature of 1 MB", path: signedPath, body: plain, header: hdr("X-Hub-Signature-256", "sha256="+strings.Repeat("a", 1<<20-100)), want: 401},
		with(signedBody(`{"text":`), "hmac: signed broken JSON", 400),
		with(signedBody(`[1,2,3]`), "hmac: signed array", 400),
		with(signedBody(`{"labels":{"alertname":"x"}}`), "hmac: signed without text", 422),
		with(signedBody(`{"text":"t","status":"bogus"}`), "hmac: signed bad status", 422),
		with(signedBody(`{"text":"t","labels":["a"]}`), "hmac: signed labels not an object", 422),
		with(signedBody(`{"text":"t","labels":{"bad name!":"v"}}`), "hmac: signed invalid label name", 422),
		// Bearer source.
		{name: "bearer: no token", path: scriptsPath, body: plain, want: 401},
		{name: "bearer: wrong token", path: scriptsPath, body: plain, header: hdr("Authorization", "Bearer wrong"), want: 401},
		{name: "bearer: empty token", path: scriptsPath, body: plain, header: hdr("Authorization", "Bearer "), want: 401},
		{name: "bearer: basic instead", path: scriptsPath, body: plain, header: hdr("Authorization", "Basic dXNlcjpwYXNz"), want: 401},
		{name: "bearer: token as query", path: scriptsPath + "?token=" + bearerToken, body: plain, want: 401},
		{name: "bearer: right token, wrong type", path: scriptsPath, body: []byte(`{"text":5}`), header: bearer, want: 422},
		// Controls: the same sources do accept a good request.
		{name: "control: Alertmanager", body: amPayload("Control0001"), want: 202},
		{name: "control: no content type", noContentType: true, body: amPayload("Control0002"), want: 202},
		with(signedBody(`{"text":"Control0003 signed","labels":{"alertname":"Control0003"}}`), "control: hmac", 202),
		{name: "control: bearer", path: scriptsPath, body: []byte(`{"text":"Control0004 bearer","labels":{"alertname":"Control0004"}}`), header: bearer, want: 202},
	}
}

// TestBadInput sends the catalogue of malformed and hostile requests: each
// gets the expected 4xx (or 202 where the input is hostile but valid), none
// a 5xx; nothing panics; and the bridge still accepts and delivers a good
// request afterwards.
func TestBadInput(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited, RejectNonGSM: true})
	defer fake.Close()
	nums := numbers(1)
	s := newSetup(t, config{ProviderURL: fake.URL, Numbers: nums, Extra: badInputExtra})
	binarytest.WriteFile(t, s.dir, "hmac-secret", hmacSecret)
	binarytest.WriteFile(t, s.dir, "bearer-token", bearerToken)
	b := start(t, s.args()...)

	cases := catalogue()
	if len(cases) < 40 {
		t.Fatalf("catalogue has %d requests, want at least 40", len(cases))
	}
	accepted := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path := c.method, c.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/api/v1/alertmanager"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, method, b.URL(path), bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !c.noContentType {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range c.header {
				req.Header[k] = v
			}
			r, err := do(req)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if r.Status >= 500 {
				t.Errorf("%d (a server error) for %s; body %s", r.Status, c.name, r.Raw)
			}
			if r.Status != c.want {
				t.Errorf("status %d, want %d; body %.300s", r.Status, c.want, r.Raw)
			}
			if r.Status != http.StatusAccepted && r.Body["status"] != "error" {
				t.Errorf(`error reply is not {"status":"error",...}: %.300s`, r.Raw)
			}
			if r.Status == http.StatusAccepted {
				accepted++
			}
			if !b.Running() {
				t.Fatalf("bridge exited:\n%s", b.Logs())
			}
		})
	}

	t.Run("protocol abuse", func(t *testing.T) { protocolAbuse(t, b) })
	t.Run("slow headers", func(t *testing.T) { slowHeaders(t, b, fake, nums) })
	t.Run("slow body", func(t *testing.T) { slowBody(t, b, fake, nums) })

	// The process is unaffected: a good request is accepted and delivered,
	// as are the hostile-but-valid ones.
	b.mustAccept("After0001")
	w := want{}
	w.add("After0001", nums)
	w.add("Control0001", nums)
	w.add("Control0002", nums)
	waitDelivered(t, fake, w, 30*time.Second, b)
	binarytest.Eventually(t, 30*time.Second, "every accepted notification delivered", func() (bool, string) {
		p := b.metric("smsbridge_outbox_pending")
		return p == 0, fmt.Sprintf("pending %v", p)
	})
	if f := b.sum("smsbridge_deliveries_failed_total"); f != 0 {
		t.Errorf("%v deliveries failed; the provider refuses text outside GSM-7, so some text was not converted", f)
	}
	b.checkLog()
	t.Logf("%d catalogue requests (%d accepted as hostile but valid or controls), no 5xx, no panic", len(cases), accepted)
}

// raw sends bytes on a fresh connection and returns the status code of the
// reply.
func raw(addr, req string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read status line: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("status line %q", line)
	}
	return strconv.Atoi(f[1])
}

// protocolAbuse sends requests no HTTP client library would: Go's server
// refuses them before the bridge's handlers see them.
func protocolAbuse(t *testing.T, b *bridge) {
	body := string(amPayload("Abuse0001"))
	for _, c := range []struct {
		name, req string
		want      int
	}{
		{"no Host header", "POST /api/v1/alertmanager HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400},
		{"Content-Length and chunked (smuggling)", "POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two different Content-Lengths", "POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400},
		{"broken chunk size", "POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n", 400},
		{"header block of 2 MB", "POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", 431},
		{"garbage request line", "HELLO\r\n\r\n", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := raw(b.Addr, c.req)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
		})
	}
	if !b.Running() {
		t.Fatalf("bridge exited:\n%s", b.Logs())
	}
}

// slowHeaders opens many connections that send their headers a line at a
// time and never finish; the bridge keeps serving others, and drops the
// slow ones at its header timeout (10 s).
func slowHeaders(t *testing.T, b *bridge, fake *smsfake.Server, nums []string) {
	const conns = 100
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		if _, err := c.Write([]byte("POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	w := want{}
	var slowest time.Duration
	for i := range 5 {
		name := fmt.Sprintf("Slowhead%04d", i)
		// A header line now and then keeps each slow connection alive
		// from a naive server's point of view.
		for _, c := range open {
			_, _ = c.Write([]byte("X-Drip: 1\r\n"))
		}
		t0 := time.Now()
		b.mustAccept(name)
		d := time.Since(t0)
		if d > 5*time.Second {
			t.Errorf("a good request took %s beside %d slow-header connections", d, conns)
		}
		slowest = max(slowest, d)
		w.add(name, nums)
	}
	t.Logf("slowest good request beside %d slow-header connections: %s", conns, slowest)
	waitDelivered(t, fake, w, 30*time.Second, b)
	// The server's ReadHeaderTimeout (10 s) must cut every slow client off.
	closed := 0
	for _, c := range open {
		_ = c.SetReadDeadline(start.Add(15 * time.Second))
		buf := make([]byte, 512)
		for {
			_, err := c.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed++
				}
				break
			}
		}
	}
	if closed != conns {
		t.Errorf("%d of %d slow-header connections closed by the bridge within 15 s", closed, conns)
	}
}

// slowBody sends a body a few bytes at a time on several connections;
// meanwhile other requests are served at once. (The bridge's ReadTimeout of
// 30 s ends such a request; this test does not wait for it.)
func slowBody(t *testing.T, b *bridge, fake *smsfake.Server, nums []string) {
	const conns = 20
	body := amPayload("Slowbody0001")
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		fmt.Fprintf(c, "POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	}
	w := want{}
	sent := 0
	var slowest time.Duration
	for i := range 10 {
		for _, c := range open {
			_, _ = c.Write(body[sent : sent+5])
		}
		sent += 5
		name := fmt.Sprintf("Slowbody%04d", 100+i)
		t0 := time.Now()
		b.mustAccept(name)
		d := time.Since(t0)
		if d > 5*time.Second {
			t.Errorf("a good request took %s beside %d slow-body connections", d, conns)
		}
		slowest = max(slowest, d)
		w.add(name, nums)
		if resp, err := http.Get(b.URL("/-/healthy")); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("healthy check beside slow bodies: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("slowest good request beside %d slow-body connections: %s", conns, slowest)
	waitDelivered(t, fake, w, 30*time.Second, b)
	// The slow senders give up half-way; the bridge must not treat their
	// partial bodies as notifications.
	for _, c := range open {
		c.Close()
	}
	open = nil
	if got := deliveries(fake); got["Slowbody0001|"+nums[0]] != 0 {
		t.Errorf("a body cut off half-way was delivered")
	}
}

// TestBadConfig runs check-config on broken configurations, including
// invalid numbers: each exits 1 with an error naming the problem, and the
// daemon refuses to start on them.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	key := binarytest.WriteFile(t, dir, "api-key", apiKey)
	base := func(extra string) string {
		return "sms:\n  url: http://127.0.0.1:1/sms/messages\n  api_key_file: " + key + "\n" + extra
	}
	route := "route:\n  receiver: ops\n"
	rcv := func(nums string) string { return "receivers:\n  - name: ops\n    numbers: [" + nums + "]\n" }
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"number without plus", base(route + rcv(`"27831234567"`)), "27831234567"},
		{"number too short", base(route + rcv(`"+12"`)), "+12"},
		{"number with letters", base(route + rcv(`"+2783ABC4567"`)), "+2783ABC4567"},
		{"number as a list", base(route + rcv(`["+27831234567"]`)), "bad.yml:8:"},
		{"number of 40 digits", base(route + rcv(`"+`+strings.Repeat("1", 40)+`"`)), "+1111"},
		{"oncall list with a bad number", base(route + rcv(`"+27831234567"`) + "    oncall: [db]\noncall:\n  - name: db\n    numbers: [\"0831234567\"]\n"), "0831234567"},
		{"unknown receiver in route", base("route:\n  receiver: nobody\n" + rcv(`"+27831234567"`)), "nobody"},
		{"bad matcher", base("route:\n  receiver: ops\n  routes:\n    - matchers: ['team=~\"(\"']\n      receiver: ops\n" + rcv(`"+27831234567"`)), "team"},
		{"unknown key", base("  ratelimit: 5\n" + route + rcv(`"+27831234567"`)), "ratelimit"},
		{"negative rate limit", base("  rate_limit: -1\n" + route + rcv(`"+27831234567"`)), "rate_limit"},
		{"max_segments 99", base("  max_segments: 99\n" + route + rcv(`"+27831234567"`)), "max_segments"},
		{"batch_size 5000", base("  batch_size: 5000\n" + route + rcv(`"+27831234567"`)), "batch_size"},
		{"no route", base(rcv(`"+27831234567"`)), "route"},
		{"duplicate receiver", base(route + rcv(`"+27831234567"`) + "  - name: ops\n    numbers: [\"+27831234568\"]\n"), "ops"},
		{"webhook name with a slash", base(route + rcv(`"+27831234567"`) + "webhooks:\n  - name: a/b\n    preset: plain\n"), "a/b"},
		{"not YAML", "sms: [\n", "bad.yml:1:"},
		{"empty file", "", "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := binarytest.WriteFile(t, dir, "bad.yml", c.yaml)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(binPath, "check-config", "--config.file="+cfg)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("check-config: %v, want exit status 1; stdout %s; stderr %s", err, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("check-config stderr %q does not name %q", stderr.String(), c.want)
			}
			if strings.Contains(stdout.String()+stderr.String(), apiKey) {
				t.Errorf("check-config printed the API key")
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		err := exec.Command(binPath, "check-config", "--config.file="+filepath.Join(dir, "nope.yml")).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("check-config of a missing file: %v, want exit status 1", err)
		}
	})
	t.Run("serve refuses an invalid number", func(t *testing.T) {
		cfg := binarytest.WriteFile(t, dir, "bad-serve.yml", base(route+rcv(`"+12"`)))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+binarytest.FreeAddr(t))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || ctx.Err() != nil {
			t.Fatalf("serve with an invalid number: %v, want a quick non-zero exit; output:\n%s", err, out)
		}
	})
}
