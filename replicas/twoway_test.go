//go:build replicas && linux

package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	"github.com/smsbridge/smsbridge/internal/pgtest"
	"github.com/smsbridge/smsbridge/twoway"
)

const (
	twAlice = "+27833100001"
	twBob   = "+27833100002"
	twCarol = "+27833100003"
	twToken = "replicas-c4llback-t0ken-0123456789abcdef"
	// twStep is the escalation step: the shortest the configuration
	// allows.
	twStep = 10 * time.Second
)

// newTwoWayCluster is a cluster whose page to alice and carol
// (db-oncall) escalates to bob after twStep, with replies on.
func newTwoWayCluster(t *testing.T, p *provider) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, cfgPath: filepath.Join(dir, "smsbridge.yml"), numbers: []string{twAlice, twCarol}}
	cfg := fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: %d
  default_pause: 1s
  callback: {token_file: %s}
delivery: {workers: 4, min_backoff: 50ms, max_backoff: 500ms}
storage:
  driver: postgres
  dsn_file: %s
  poll_interval: 250ms
replies: {enabled: true}
people:
  - {name: alice, number: "%s"}
  - {name: bob, number: "%s"}
  - {name: carol, number: "%s"}
route: {receiver: db-oncall}
receivers:
  - name: db-oncall
    numbers: [alice, carol]
    escalate: [{after: %s, receiver: db-secondary}]
  - name: db-secondary
    numbers: [bob]
`, p.url, binarytest.WriteFile(t, dir, "api-key", apiKey), rateLimit, binarytest.WriteFile(t, dir, "token", twToken), binarytest.WriteFile(t, dir, "pg-dsn", pgtest.Database(t)),
		twAlice, twBob, twCarol, twStep)
	if err := os.WriteFile(c.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// sentTo returns the texts the provider took for number that name the
// alert name.
func sentTo(p *provider, number, name string) []string {
	var out []string
	for _, m := range p.Messages() {
		if m.Number == number && strings.Contains(m.Text, name) {
			out = append(out, m.Text)
		}
	}
	return out
}

// steps returns the state and reason of every escalation step b lists.
func (b *bridge) steps(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get(b.URL("/api/v1/escalations?state=all"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Escalations []struct {
			Steps []struct{ State, Reason string } `json:"steps"`
		} `json:"escalations"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET /api/v1/escalations: %d %s: %v", resp.StatusCode, body, err)
	}
	var got []string
	for _, e := range out.Escalations {
		for _, s := range e.Steps {
			got = append(got, s.State+"/"+s.Reason)
		}
	}
	return got
}

// reply posts a reply from number to the callback URL.
func reply(p *provider, number, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Reply(ctx, number, text)
}

// TestTwoWayOnFollower: the provider's callbacks reach a replica that
// does not dispatch. A reply ACK there acknowledges the page: the
// follower stops its escalation at once (long before the step is due)
// and the leader, which sends steps, pages nobody. A STOP there opts the
// number out for every replica: the leader sends the next page to the
// others only.
func TestTwoWayOnFollower(t *testing.T) {
	p := newProvider(t)
	c := newTwoWayCluster(t, p)
	a, b := c.start("a"), c.start("b")
	lead := leader(t, 20*time.Second, a, b)
	follower := a
	if lead == a {
		follower = b
	}
	p.SetCallbackURL("http://" + follower.Addr + twoway.CallbackPath + twToken)

	if st, err := follower.post("Acked0001"); err != nil || st != http.StatusAccepted {
		t.Fatalf("page: %d %v", st, err)
	}
	paged := time.Now()
	var page []string
	binarytest.Eventually(t, 10*time.Second, "alice's page", func() (bool, string) {
		page = sentTo(p, twAlice, "Acked0001")
		return len(page) == 1, fmt.Sprint(len(page), " pages")
	})
	code := regexp.MustCompile(`Reply ACK (\d+)`).FindStringSubmatch(page[0])
	if code == nil {
		t.Fatalf("no reply code in %q", page[0])
	}
	if err := reply(p, twAlice, "ACK "+code[1]); err != nil {
		t.Fatal(err)
	}
	binarytest.Eventually(t, twStep/2, "the step stopped on the follower", func() (bool, string) {
		st := follower.steps(t)
		return len(st) == 1 && st[0] == "stopped/acked", fmt.Sprint(st)
	})
	if d := time.Until(paged.Add(twStep + 2*time.Second)); d > 0 {
		time.Sleep(d)
	}
	if got := sentTo(p, twBob, "Acked0001"); len(got) != 0 {
		t.Errorf("bob was paged after the acknowledgement: %q", got)
	}
	if st := lead.steps(t); len(st) != 1 || st[0] != "stopped/acked" {
		t.Errorf("the leader lists the steps %v", st)
	}

	if err := reply(p, twAlice, "STOP"); err != nil {
		t.Fatal(err)
	}
	if st, err := follower.post("Stopped0002"); err != nil || st != http.StatusAccepted {
		t.Fatalf("second page: %d %v", st, err)
	}
	binarytest.Eventually(t, 10*time.Second, "carol's second page, sent by the leader", func() (bool, string) {
		n := len(sentTo(p, twCarol, "Stopped0002"))
		return n == 1, fmt.Sprint(n, " pages")
	})
	time.Sleep(time.Second) // alice's would have gone in the same request
	if got := sentTo(p, twAlice, "Stopped0002"); len(got) != 0 {
		t.Errorf("alice replied STOP on the follower and still got %q", got)
	}
	if v, ok := lead.metric("smsbridge_dispatch_leader"); !ok || v != 1 {
		t.Errorf("the leader changed during the test")
	}
}
