package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/config"
)

func TestLoaders(t *testing.T) {
	srv := httptest.NewServer(minimalHandler())
	defer srv.Close()
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(*loader) runResult
		want int
	}{
		// The count bound ends the run long before the time bound.
		{"closed loop, count-bound", func(l *loader) runResult { return l.closedLoop(ctx, 4, time.Minute, 50) }, 50},
		// 100/s for 300ms is 30 requests, however slow the machine.
		{"open loop", func(l *loader) runResult { return l.openLoop(ctx, 100, 300*time.Millisecond, 8) }, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoader(srv.URL, "t", 8)
			defer l.close()
			res := tt.run(l)
			if len(res.Shots) != tt.want || len(res.ok()) != tt.want {
				t.Fatalf("%d requests, %d answered 202 (%s); want %d", len(res.Shots), len(res.ok()), res.failures(), tt.want)
			}
			seen := map[string]bool{}
			for _, s := range res.Shots {
				if s.Latency <= 0 || s.Done.IsZero() {
					t.Errorf("%s: latency %s, done %v", s.Name, s.Latency, s.Done)
				}
				if seen[s.Name] {
					t.Errorf("name %s used twice", s.Name)
				}
				seen[s.Name] = true
			}
			if res.failures() != "none" || res.throughput() <= 0 {
				t.Errorf("failures %q, throughput %v", res.failures(), res.throughput())
			}
		})
	}
}

func TestFailures(t *testing.T) {
	r := runResult{Shots: []shot{{Status: 202}, {Status: 503}, {Err: context.DeadlineExceeded}, {Status: 503}}}
	if got, want := r.failures(), "503:2 error:1"; got != want {
		t.Errorf("failures = %q, want %q", got, want)
	}
}

// TestProvider checks the recorder around the fake: an outage answers 500
// and records nothing; after release, the fake's 202 is recorded under the
// alert name found in the text.
func TestProvider(t *testing.T) {
	p, err := startProvider(0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	name := alertName("t", 7)
	body, _ := json.Marshal(map[string]any{"text": "FIRING:1 " + name + " critical", "to": []string{"+27831000000", "+27831000001"}})
	send := func() int {
		req, _ := http.NewRequest(http.MethodPost, p.URL, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+providerKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send(); got != http.StatusInternalServerError {
		t.Fatalf("during the outage: %d, want 500", got)
	}
	if p.delivered([]string{name}) != 0 {
		t.Fatal("recorded a delivery during the outage")
	}
	t0 := p.release()
	if got := send(); got != http.StatusAccepted {
		t.Fatalf("after release: %d, want 202", got)
	}
	reqs, firstOK, sends := p.snapshot()
	if len(reqs) != 1 || reqs[0].Status != http.StatusAccepted || reqs[0].Numbers != 2 || reqs[0].At.Before(t0) {
		t.Errorf("requests recorded: %+v", reqs)
	}
	if _, ok := firstOK[name]; !ok || sends[name] != 1 {
		t.Errorf("first accepted %v, sends %v for %s", firstOK, sends, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.waitDelivered(ctx, []string{name}); err != nil {
		t.Error(err)
	}
}

func TestBridgeConfig(t *testing.T) {
	y := bridgeParams{ProviderURL: "http://127.0.0.1:1/sms/messages", KeyFile: "/k", Timeout: 10 * time.Second,
		RateLimit: 48.5, BatchSize: 100, Workers: 4, Numbers: numbers(2)}.yaml()
	// The daemon's own strict loader accepts it.
	if _, err := config.Load([]byte(y)); err != nil {
		t.Fatalf("config.Load: %v\n%s", err, y)
	}
	for _, want := range []string{"rate_limit: 48.5", "timeout: 10s", "workers: 4", `numbers: ["+27831000000", "+27831000001"]`} {
		if !bytes.Contains([]byte(y), []byte(want)) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
}

func TestHeavyBridgeConfig(t *testing.T) {
	y := bridgeParams{ProviderURL: "http://127.0.0.1:1/sms/messages", KeyFile: "/k", Timeout: 10 * time.Second,
		RateLimit: 50, BatchSize: 100, Numbers: numbers(4), Heavy: true}.yaml()
	if _, err := config.Load([]byte(y)); err != nil {
		t.Fatalf("config.Load: %v\n%s", err, y)
	}
	for _, want := range []string{"workers: 0", "continue: true", "name: platform", "+27841002003"} {
		if !bytes.Contains([]byte(y), []byte(want)) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
	var p struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(heavyPayload(alertName("h", 3), 3), &p); err != nil || len(p.Alerts) != 3 {
		t.Fatalf("heavy payload: %v, %d alerts", err, len(p.Alerts))
	}
}

func TestPauseViolations(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tooMany := providerRequest{At: at(0), Answered: at(20), Status: http.StatusTooManyRequests}
	for _, tc := range []struct {
		name string
		reqs []providerRequest
		want int
	}{
		{"no 429", []providerRequest{{At: at(0), Answered: at(20), Status: 202}, {At: at(10), Answered: at(30), Status: 202}}, 0},
		{"on the wire before the 429 came back", []providerRequest{tooMany, {At: at(15), Answered: at(35), Status: 202}}, 0},
		{"sent inside the pause", []providerRequest{tooMany, {At: at(25), Answered: at(45), Status: 202}, {At: at(900), Answered: at(920), Status: 202}}, 2},
		{"after the pause", []providerRequest{tooMany, {At: at(1021), Answered: at(1041), Status: 202}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pauseViolations(tc.reqs, time.Second); got != tc.want {
				t.Errorf("pauseViolations = %d, want %d", got, tc.want)
			}
		})
	}
}
