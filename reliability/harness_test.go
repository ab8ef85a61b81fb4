//go:build reliability && linux

package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// binPath is the smsbridge binary TestMain builds once for every test.
var binPath string

func TestMain(m *testing.M) { binarytest.Main(m, "smsbridge-reliability", &binPath) }

const apiKey = "reliability-key"

// setup is one bridge's surroundings: a directory with its config, API
// key and store.
type setup struct {
	dir     string
	cfgPath string
	store   string
}

// config is what a test varies in the bridge's configuration.
type config struct {
	ProviderURL string
	Timeout     string // sms.timeout
	RateLimit   int    // sms.rate_limit
	Workers     int
	HoldRetry   string
	Numbers     []string
	// Extra is YAML appended at the top level (webhooks, alertmanager);
	// $DIR in it stands for the setup's directory.
	Extra string
}

func newSetup(t *testing.T, c config) *setup {
	t.Helper()
	dir := t.TempDir()
	s := &setup{dir: dir, cfgPath: filepath.Join(dir, "smsbridge.yml"), store: filepath.Join(dir, "data")}
	key := binarytest.WriteFile(t, dir, "api-key", apiKey)
	if c.Timeout == "" {
		c.Timeout = "2s"
	}
	if c.RateLimit == 0 {
		c.RateLimit = 200
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.HoldRetry == "" {
		c.HoldRetry = "500ms"
	}
	cfg := fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: %s
  rate_limit: %d
  # A 429 that names no pause waits this long; the tests' 429s name one.
  default_pause: 1s
delivery:
  workers: %d
  min_backoff: 50ms
  max_backoff: 500ms
  hold_retry: %s
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["%s"]
%s`, c.ProviderURL, key, c.Timeout, c.RateLimit, c.Workers, c.HoldRetry, strings.Join(c.Numbers, `", "`), strings.ReplaceAll(c.Extra, "$DIR", dir))
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *setup) args() []string {
	return []string{"--config.file=" + s.cfgPath, "--storage.path=" + s.store}
}

// bridge is a running smsbridge binary.
type bridge struct {
	*binarytest.Process
	t *testing.T
}

// start runs the binary with args on a free loopback port and waits until
// it is ready. The process is killed when the test ends, or if the test
// binary dies.
func start(t *testing.T, args ...string) *bridge {
	t.Helper()
	return &bridge{Process: binarytest.Start(t, binPath, "the bridge", args...), t: t}
}

// checkLog fails the test if the bridge's log mentions a panic.
func (b *bridge) checkLog() {
	b.t.Helper()
	if strings.Contains(strings.ToLower(b.Logs()), "panic") {
		b.t.Errorf("the bridge's log mentions a panic:\n%s", b.Logs())
	}
}

// reply is an answer of the bridge.
type reply struct {
	Status int
	Body   map[string]any
	Raw    string
}

// post sends body as JSON to path.
func (b *bridge) post(path string, body []byte, header http.Header) (reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL(path), bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(req)
}

func do(req *http.Request) (reply, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}

// mustAccept posts an Alertmanager payload and fails unless it gets 202.
func (b *bridge) mustAccept(name string) {
	b.t.Helper()
	r, err := b.post("/api/v1/alertmanager", amPayload(name), nil)
	if err != nil {
		b.t.Fatalf("post %s: %v", name, err)
	}
	if r.Status != http.StatusAccepted {
		b.t.Fatalf("post %s: %d %s\n%s", name, r.Status, r.Raw, b.Logs())
	}
}

// metrics scrapes /metrics into a map from "name{labels}" (labels as the
// exposition writes them) to value.
func (b *bridge) metrics() (map[string]float64, error) {
	resp, err := http.Get(b.URL("/metrics"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// metric returns one series, e.g. `smsbridge_dispatch_held_reason{kind="suspended"}`.
func (b *bridge) metric(series string) float64 {
	b.t.Helper()
	m, err := b.metrics()
	if err != nil {
		b.t.Fatalf("scrape metrics: %v", err)
	}
	v, ok := m[series]
	if !ok {
		b.t.Fatalf("no series %s in /metrics", series)
	}
	return v
}

// sum adds every series of the metric name.
func (b *bridge) sum(name string) float64 {
	b.t.Helper()
	m, err := b.metrics()
	if err != nil {
		b.t.Fatalf("scrape metrics: %v", err)
	}
	total := 0.0
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// numbers returns n distinct valid numbers.
func numbers(n int) []string { return binarytest.Numbers(2000000, n) }

// amPayload is an Alertmanager webhook (version 4) with one firing alert
// named name; the default template puts the name in the SMS.
func amPayload(name string) []byte { return binarytest.AMPayload("reliability", name) }

// deliveries counts the fake's accepted messages per "name|number".
func deliveries(fake *smsfake.Server) map[string]int {
	got := map[string]int{}
	for _, m := range fake.Messages() {
		if name := binarytest.NameRE.FindString(m.Text); name != "" {
			got[name+"|"+m.Number]++
		}
	}
	return got
}

// want is the set of "name|number" pairs a test expects delivered.
type want map[string]bool

func (w want) add(name string, nums []string) {
	for _, n := range nums {
		w[name+"|"+n] = true
	}
}

// missing lists the wanted pairs not delivered.
func (w want) missing(got map[string]int) []string {
	var out []string
	for k := range w {
		if got[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

// waitDelivered waits until every wanted pair was accepted by the fake.
func waitDelivered(t *testing.T, fake *smsfake.Server, w want, timeout time.Duration, b *bridge) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		miss := w.missing(deliveries(fake))
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			logs := ""
			if b != nil {
				logs = b.Logs()
			}
			t.Fatalf("%d of %d accepted numbers not delivered within %s (e.g. %v)\n%s", len(miss), len(w), timeout, miss[:min(3, len(miss))], logs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
