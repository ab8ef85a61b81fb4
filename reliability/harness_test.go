//go:build reliability && linux

package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// binPath is the smsbridge binary TestMain builds once for every test.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smsbridge-reliability")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "smsbridge")
	out, err := exec.Command("go", "build", "-o", binPath, "github.com/smsbridge/smsbridge").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

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
	key := writeFile(t, dir, "api-key", apiKey)
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

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bridge is a running smsbridge binary.
type bridge struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	log    *syncBuffer
	exited chan struct{}
}

// syncBuffer is the bridge's log, written by the process and read by the
// test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs the binary with args on a free loopback port and waits until
// it is ready. The process is killed when the test ends, or if the test
// binary dies.
func start(t *testing.T, args ...string) *bridge {
	t.Helper()
	b := &bridge{t: t, addr: freeAddr(t), log: &syncBuffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(binPath, append([]string{"--web.listen-address=" + b.addr}, args...)...)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(b.url("/-/ready"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b
			}
		}
		select {
		case <-b.exited:
			t.Fatalf("bridge exited before it was ready; log:\n%s", b.logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("bridge not ready within 30s; log:\n%s", b.logs())
	return nil
}

func (b *bridge) url(path string) string { return "http://" + b.addr + path }

func (b *bridge) logs() string { return b.log.String() }

// kill sends SIGKILL and waits for the process to be gone.
func (b *bridge) kill() {
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

// running reports whether the process is still alive.
func (b *bridge) running() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// checkLog fails the test if the bridge's log mentions a panic.
func (b *bridge) checkLog() {
	b.t.Helper()
	if strings.Contains(strings.ToLower(b.logs()), "panic") {
		b.t.Errorf("the bridge's log mentions a panic:\n%s", b.logs())
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url(path), bytes.NewReader(body))
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
		b.t.Fatalf("post %s: %d %s\n%s", name, r.Status, r.Raw, b.logs())
	}
}

// metrics scrapes /metrics into a map from "name{labels}" (labels as the
// exposition writes them) to value.
func (b *bridge) metrics() (map[string]float64, error) {
	resp, err := http.Get(b.url("/metrics"))
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

// eventually polls cond until it holds or timeout passes, then fails with
// what cond last said.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// numbers returns n distinct valid numbers.
func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+2783%07d", 2000000+i)
	}
	return out
}

// amPayload is an Alertmanager webhook (version 4) with one firing alert
// named name; the default template puts the name in the SMS.
func amPayload(name string) []byte {
	return fmt.Appendf(nil, `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}:{alertname=\"%[1]s\"}",`+
		`"groupLabels":{"alertname":"%[1]s"},"commonLabels":{"alertname":"%[1]s","severity":"critical"},"commonAnnotations":{},`+
		`"externalURL":"http://am","alerts":[{"status":"firing","labels":{"alertname":"%[1]s","severity":"critical","instance":"db-1"},`+
		`"annotations":{"summary":"reliability %[1]s"},"startsAt":"2026-11-26T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f%[1]s"}]}`, name)
}

// nameRE finds the alert names the tests use: a capitalised word and four
// digits, e.g. Crash0042.
var nameRE = regexp.MustCompile(`\b[A-Z][a-z]+\d{4}\b`)

// deliveries counts the fake's accepted messages per "name|number".
func deliveries(fake *smsfake.Server) map[string]int {
	got := map[string]int{}
	for _, m := range fake.Messages() {
		if name := nameRE.FindString(m.Text); name != "" {
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
				logs = b.logs()
			}
			t.Fatalf("%d of %d accepted numbers not delivered within %s (e.g. %v)\n%s", len(miss), len(w), timeout, miss[:min(3, len(miss))], logs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// duplicates counts deliveries beyond the first of each pair.
func duplicates(got map[string]int) int {
	d := 0
	for _, n := range got {
		d += max(n-1, 0)
	}
	return d
}
