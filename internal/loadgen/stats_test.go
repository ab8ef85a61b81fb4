package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{name: "empty", in: nil, want: summary{}},
		{name: "one", in: []time.Duration{7}, want: summary{N: 1, P50: 7, P90: 7, P99: 7, Max: 7, Mean: 7}},
		{
			name: "hundred, shuffled",
			in:   shuffled(100),
			want: summary{N: 100, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50},
		},
		{
			name: "one slow request in ten",
			in:   []time.Duration{1, 1, 1, 1, 1, 1, 1, 1, 1, 1000},
			want: summary{N: 10, P50: 1, P90: 1, P99: 1000, Max: 1000, Mean: 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// shuffled returns 1..n in a fixed scrambled order.
func shuffled(n int) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = time.Duration((i*37)%n + 1)
	}
	return d
}

func TestRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name string
		in   []time.Time
		want float64
	}{
		{name: "none", in: nil, want: 0},
		{name: "one", in: []time.Time{t0}, want: 0},
		{name: "same instant", in: []time.Time{t0, t0}, want: 0},
		{
			name: "eleven events over one second",
			in:   every(t0, 11, 100*time.Millisecond),
			want: 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rate(tt.in); got != tt.want {
				t.Errorf("rate = %v, want %v", got, tt.want)
			}
		})
	}
}

func every(t0 time.Time, n int, d time.Duration) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = t0.Add(time.Duration(i) * d)
	}
	return out
}

func TestMS(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{350 * time.Microsecond, "0.35"},
		{12340 * time.Microsecond, "12.3"},
		{1500 * time.Millisecond, "1500"},
	}
	for _, tt := range tests {
		if got := ms(tt.in); got != tt.want {
			t.Errorf("ms(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPayload(t *testing.T) {
	for _, seq := range []int{1, 42, 9999999} {
		name := alertName("max", seq)
		var p minimalPayload
		if err := json.Unmarshal(payload(name, seq), &p); err != nil {
			t.Fatalf("payload %d is not valid JSON: %v", seq, err)
		}
		if p.Version != "4" || len(p.Alerts) != 1 || p.Alerts[0].Labels["alertname"] != name {
			t.Errorf("payload %d: version %q, %d alerts, alertname %q", seq, p.Version, len(p.Alerts), p.Alerts[0].Labels["alertname"])
		}
		text := "FIRING:1 " + name + "\ncritical db-1"
		if got := nameRE.FindString(text); got != name {
			t.Errorf("nameRE found %q in %q, want %q", got, text, name)
		}
	}
}

func TestMinimalHandler(t *testing.T) {
	srv := httptest.NewServer(minimalHandler())
	defer srv.Close()
	tests := []struct {
		body string
		want int
	}{
		{string(payload(alertName("t", 1), 1)), http.StatusAccepted},
		{`{"version":`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		resp, err := http.Post(srv.URL+"/api/v1/alertmanager", "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("POST %.20q: %d, want %d", tt.body, resp.StatusCode, tt.want)
		}
	}
}
