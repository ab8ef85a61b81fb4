//go:build replicas && linux

package replicas

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	"github.com/smsbridge/smsbridge/internal/pgtest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// binPath is the smsbridge binary TestMain builds once.
var binPath string

func TestMain(m *testing.M) { binarytest.Main(m, "smsbridge-replicas", &binPath) }

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
	key := binarytest.WriteFile(t, dir, "api-key", apiKey)
	dsn := binarytest.WriteFile(t, dir, "pg-dsn", pgtest.Database(t))
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

// bridge is a running replica.
type bridge struct {
	*binarytest.Process
	t    *testing.T
	name string
}

// start runs one replica and waits until it is ready.
func (c *cluster) start(name string) *bridge {
	c.t.Helper()
	p := binarytest.Start(c.t, binPath, name, "--config.file="+c.cfgPath, "--storage.path="+filepath.Join(c.dir, name), "--log.level=debug")
	return &bridge{Process: p, t: c.t, name: name}
}

func (b *bridge) get(path string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.URL(path), nil)
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
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.URL("/api/v1/alertmanager"), bytes.NewReader(amPayload(name)))
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
	resp, err := http.Get(b.URL("/metrics"))
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
	binarytest.Eventually(t, timeout, "one leader", func() (bool, string) {
		var ls []string
		found = nil
		for _, b := range bs {
			if b.Running() && b.leading() {
				ls = append(ls, b.name)
				found = b
			}
		}
		return len(ls) == 1, fmt.Sprint("leaders: ", ls)
	})
	return found
}

func numbers(n int) []string { return binarytest.Numbers(3000000, n) }

// amPayload is an Alertmanager webhook with one firing alert named name;
// the default template puts the name in the SMS.
func amPayload(name string) []byte { return binarytest.AMPayload("replicas", name) }

// delivered counts the fake's accepted messages per "name|number".
func delivered(p *provider) map[string]int {
	got := map[string]int{}
	for _, m := range p.Messages() {
		if name := binarytest.NameRE.FindString(m.Text); name != "" {
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
	binarytest.Eventually(t, timeout, "every accepted notification delivered", func() (bool, string) {
		got = delivered(p)
		miss := missing(got, names, nums)
		return len(miss) == 0, fmt.Sprintf("%d of %d pairs missing, e.g. %v", len(miss), len(names)*len(nums), miss[:min(3, len(miss))])
	})
	return got
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
