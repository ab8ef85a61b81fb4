//go:build replicas && linux

package replicas

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/pgtest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// binPath is the smsbridge binary TestMain builds once.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smsbridge-replicas")
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

const (
	apiKey = "replicas-key"
	// rateLimit is the provider's limit and the bridges' sms.rate_limit.
	rateLimit = 10
)

// provider is the fake SMS API behind a handler that records when each
// request arrived, so a test can count requests per second.
type provider struct {
	*smsfake.Server
	url string
	srv *httptest.Server

	mu       sync.Mutex
	arrivals []time.Time
}

func newProvider(t *testing.T) *provider {
	t.Helper()
	p := &provider{Server: smsfake.New(smsfake.Options{
		APIKey: apiKey, Credits: smsfake.Unlimited,
		RateLimit: rateLimit, RateLimitPause: 2,
		Latency: 30 * time.Millisecond,
	})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.arrivals = append(p.arrivals, time.Now())
		p.mu.Unlock()
		p.Server.ServeHTTP(w, r)
	}))
	p.url = p.srv.URL + smsfake.Path
	t.Cleanup(func() { p.srv.Close(); p.Server.Close() })
	return p
}

// requests returns the arrival times so far.
func (p *provider) requests() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.arrivals)
}

// busiestSecond returns the most requests that arrived within any one
// second (a sliding window), and when that second began.
func busiestSecond(ts []time.Time) (int, time.Time) {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, at := 0, time.Time{}
	j := 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= time.Second {
			j++
		}
		if n := i - j + 1; n > best {
			best, at = n, ts[j]
		}
	}
	return best, at
}

// cluster is the bridges' shared surroundings: one database, one config.
type cluster struct {
	t       *testing.T
	dir     string
	cfgPath string
	numbers []string
}

func newCluster(t *testing.T, p *provider, numbers []string) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, cfgPath: filepath.Join(dir, "smsbridge.yml"), numbers: numbers}
	key := writeFile(t, dir, "api-key", apiKey)
	dsn := writeFile(t, dir, "pg-dsn", pgtest.Database(t))
	cfg := fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: %d
  default_pause: 1s
delivery:
  workers: 4
  min_backoff: 50ms
  max_backoff: 500ms
storage:
  driver: postgres
  dsn_file: %s
  poll_interval: 250ms
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["%s"]
`, p.url, key, rateLimit, dsn, strings.Join(numbers, `", "`))
	if err := os.WriteFile(c.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
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
	name   string
	cmd    *exec.Cmd
	addr   string
	log    *syncBuffer
	exited chan struct{}
}

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

// start runs one replica and waits until it is ready.
func (c *cluster) start(name string) *bridge {
	t := c.t
	t.Helper()
	b := &bridge{t: t, name: name, addr: freeAddr(t), log: &syncBuffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(binPath, "--config.file="+c.cfgPath, "--storage.path="+filepath.Join(c.dir, name),
		"--web.listen-address="+b.addr, "--log.level=debug")
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
		if b.running() {
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", b.name, b.log)
		}
	})
	eventually(t, 30*time.Second, name+" ready", func() (bool, string) {
		if !b.running() {
			t.Fatalf("%s exited before it was ready; log:\n%s", name, b.log)
		}
		st, err := b.get("/-/ready")
		return err == nil && st == http.StatusOK, fmt.Sprint(st, err)
	})
	return b
}

func (b *bridge) url(path string) string { return "http://" + b.addr + path }

func (b *bridge) running() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (b *bridge) kill() {
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

func (b *bridge) get(path string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url(path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// post sends an Alertmanager payload named name and returns the status.
func (b *bridge) post(name string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.url("/api/v1/alertmanager"), bytes.NewReader(amPayload(name)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// leading reports the replica's smsbridge_dispatch_leader.
func (b *bridge) leading() bool {
	v, ok := b.metric("smsbridge_dispatch_leader")
	return ok && v == 1
}

// metric returns one series from /metrics.
func (b *bridge) metric(series string) (float64, bool) {
	resp, err := http.Get(b.url("/metrics"))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// leader waits until exactly one of bs leads and returns it.
func leader(t *testing.T, timeout time.Duration, bs ...*bridge) *bridge {
	t.Helper()
	var found *bridge
	eventually(t, timeout, "one leader", func() (bool, string) {
		var ls []string
		found = nil
		for _, b := range bs {
			if b.running() && b.leading() {
				ls = append(ls, b.name)
				found = b
			}
		}
		return len(ls) == 1, fmt.Sprint("leaders: ", ls)
	})
	return found
}

// eventually polls cond until it holds or timeout passes.
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
		time.Sleep(50 * time.Millisecond)
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

func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+2783%07d", 3000000+i)
	}
	return out
}

// amPayload is an Alertmanager webhook with one firing alert named name;
// the default template puts the name in the SMS.
func amPayload(name string) []byte {
	return fmt.Appendf(nil, `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}:{alertname=\"%[1]s\"}",`+
		`"groupLabels":{"alertname":"%[1]s"},"commonLabels":{"alertname":"%[1]s","severity":"critical"},"commonAnnotations":{},`+
		`"externalURL":"http://am","alerts":[{"status":"firing","labels":{"alertname":"%[1]s","severity":"critical","instance":"db-1"},`+
		`"annotations":{"summary":"replicas %[1]s"},"startsAt":"2026-11-26T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f%[1]s"}]}`, name)
}

// nameRE finds the alert names the tests use: a capitalised word and four
// digits, e.g. Spread0042.
var nameRE = regexp.MustCompile(`\b[A-Z][a-z]+\d{4}\b`)

// delivered counts the fake's accepted messages per "name|number".
func delivered(p *provider) map[string]int {
	got := map[string]int{}
	for _, m := range p.Messages() {
		if name := nameRE.FindString(m.Text); name != "" {
			got[name+"|"+m.Number]++
		}
	}
	return got
}

// missing lists the pairs of names x numbers not delivered.
func missing(got map[string]int, names, nums []string) []string {
	var out []string
	for _, n := range names {
		for _, num := range nums {
			if got[n+"|"+num] == 0 {
				out = append(out, n+"|"+num)
			}
		}
	}
	return out
}

// waitDelivered waits until every (name, number) pair was accepted.
func waitDelivered(t *testing.T, p *provider, names, nums []string, timeout time.Duration) map[string]int {
	t.Helper()
	var got map[string]int
	eventually(t, timeout, "every accepted notification delivered", func() (bool, string) {
		got = delivered(p)
		miss := missing(got, names, nums)
		return len(miss) == 0, fmt.Sprintf("%d of %d pairs missing, e.g. %v", len(miss), len(names)*len(nums), miss[:min(3, len(miss))])
	})
	return got
}

// duplicates counts deliveries beyond the first of each pair.
func duplicates(got map[string]int) int {
	d := 0
	for _, n := range got {
		d += max(n-1, 0)
	}
	return d
}

// checkPace fails the test if a request arrived inside a 429 pause or any
// second held more than the rate limit.
func checkPace(t *testing.T, p *provider) {
	t.Helper()
	if n := p.EarlyRequests(); n != 0 {
		t.Errorf("%d requests arrived inside a 429 pause", n)
	}
	if n, at := busiestSecond(p.requests()); n > rateLimit {
		t.Errorf("%d requests within one second from %s; the limit is %d", n, at.Format("15:04:05.000"), rateLimit)
	}
	if span, ok := tightestSpan(p.requests(), rateLimit); ok {
		t.Logf("the closest %d consecutive requests spanned %v (more than 1s keeps every second at %d or fewer)", rateLimit+1, span.Round(time.Millisecond), rateLimit)
	}
}

// tightestSpan returns the shortest time from a request to the n-th after
// it.
func tightestSpan(ts []time.Time, n int) (time.Duration, bool) {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, ok := time.Duration(0), false
	for i := 0; i+n < len(ts); i++ {
		if d := ts[i+n].Sub(ts[i]); !ok || d < best {
			best, ok = d, true
		}
	}
	return best, ok
}
