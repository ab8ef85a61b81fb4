//go:build reliability && linux

package reliability

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestProviderFaultMix sends through a provider that fails 47% of requests:
// 30% answer 500, 10% answer 429 announcing a 1 or 2 s pause, 5% reset the
// connection after reading the request, 2% hang past the client's timeout.
// Everything accepted is delivered exactly once, and no request arrives
// inside a pause the provider announced.
//
// The bridge runs with delivery.workers 1: with several workers, a request
// already in flight when another worker's 429 is written lands inside the
// pause through no fault of the client, and the fake cannot tell those
// apart (see smsfake.Server.EarlyRequests).
func TestProviderFaultMix(t *testing.T) {
	const notifications = 40
	nums := numbers(2)
	fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
	defer fake.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (fault sequence)", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	type fault struct {
		kind string
		f    smsfake.Fault
	}
	// One of each first, so every kind is exercised whatever the seed;
	// then the mix.
	seq := []fault{
		{"500", smsfake.Fault{Status: http.StatusInternalServerError}},
		{"429", smsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1}},
		{"reset", smsfake.Fault{Drop: true}},
		{"hang", smsfake.Fault{Hang: true}},
		{"429", smsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 2}},
	}
	// Enough for every request the run can make; after them the provider
	// is healthy, which only shortens a slow run.
	for len(seq) < 2000 {
		switch p := rng.Float64(); {
		case p < 0.30:
			seq = append(seq, fault{"500", smsfake.Fault{Status: http.StatusInternalServerError}})
		case p < 0.40:
			seq = append(seq, fault{"429", smsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1 + rng.IntN(2)}})
		case p < 0.45:
			seq = append(seq, fault{"reset", smsfake.Fault{Drop: true}})
		case p < 0.47:
			seq = append(seq, fault{"hang", smsfake.Fault{Hang: true}})
		default:
			seq = append(seq, fault{"ok", smsfake.Fault{}})
		}
	}
	for _, f := range seq {
		fake.FailNext(1, f.f)
	}
	s := newSetup(t, config{ProviderURL: fake.URL, Workers: 1, Timeout: "1s", Numbers: nums})
	b := start(t, s.args()...)
	w := want{}
	for i := range notifications {
		name := fmt.Sprintf("Fault%04d", i)
		b.mustAccept(name)
		w.add(name, nums)
	}
	waitDelivered(t, fake, w, 3*time.Minute, b)
	got := deliveries(fake)
	if d := binarytest.Duplicates(got); d != 0 {
		t.Errorf("%d deliveries repeated; none of these faults lets the provider accept a request the bridge then retries", d)
	}
	if e := fake.EarlyRequests(); e != 0 {
		t.Errorf("%d requests arrived inside a pause the provider had announced", e)
	}
	if f := b.sum("smsbridge_deliveries_failed_total"); f != 0 {
		t.Errorf("%v deliveries failed; every fault here is retryable", f)
	}
	if rl := b.sum("smsbridge_sms_rate_limited_total"); rl == 0 {
		t.Errorf("no 429 seen; the mix did not exercise pauses")
	}
	used := map[string]int{}
	for _, f := range seq[:min(fake.Requests(), len(seq))] {
		used[f.kind]++
	}
	t.Logf("%d notifications × %d numbers delivered in %d provider requests (%d answered 500, %d 429, %d reset, %d hung, %d normal); 0 early; no repeats",
		notifications, len(nums), fake.Requests(), used["500"], used["429"], used["reset"], used["hang"], used["ok"])
	b.checkLog()
}

// TestProviderOutage sends while the provider answers every request with
// 500, then while nothing listens on its port at all; the notifications
// wait in the queue, nothing fails, and all are delivered once the
// provider is back.
func TestProviderOutage(t *testing.T) {
	nums := numbers(2)

	t.Run("all 500", func(t *testing.T) {
		fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
		defer fake.Close()
		fake.FailRate(1, smsfake.Fault{Status: http.StatusInternalServerError})
		s := newSetup(t, config{ProviderURL: fake.URL, Numbers: nums})
		b := start(t, s.args()...)
		w := want{}
		for i := range 20 {
			name := fmt.Sprintf("Outage%04d", i)
			b.mustAccept(name)
			w.add(name, nums)
		}
		// Three rounds of retries fail, on average, for each notification.
		binarytest.Eventually(t, 30*time.Second, "retries against the failing provider", func() (bool, string) {
			return fake.Requests() >= 3*20, fmt.Sprintf("%d requests", fake.Requests())
		})
		if got := fake.Accepted(); got != 0 {
			t.Fatalf("%d messages accepted by a provider answering 500", got)
		}
		if p := b.metric("smsbridge_outbox_pending"); p != float64(len(w)) {
			t.Errorf("smsbridge_outbox_pending %v during the outage, want %d", p, len(w))
		}
		fake.ClearFaults()
		waitDelivered(t, fake, w, 60*time.Second, b)
		if f := b.sum("smsbridge_deliveries_failed_total"); f != 0 {
			t.Errorf("%v deliveries failed during a 500 outage", f)
		}
		binarytest.Eventually(t, 10*time.Second, "queue empty", func() (bool, string) {
			p := b.metric("smsbridge_outbox_pending")
			return p == 0, fmt.Sprintf("pending %v", p)
		})
		b.checkLog()
	})

	t.Run("connection refused", func(t *testing.T) {
		// The provider's address is known, but nothing listens there yet.
		addr := binarytest.FreeAddr(t)
		fake := smsfake.New(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
		defer fake.Close()
		s := newSetup(t, config{ProviderURL: "http://" + addr + smsfake.Path, Numbers: nums})
		b := start(t, s.args()...)
		w := want{}
		for i := range 20 {
			name := fmt.Sprintf("Refused%04d", i)
			b.mustAccept(name)
			w.add(name, nums)
		}
		binarytest.Eventually(t, 30*time.Second, "failed attempts counted", func() (bool, string) {
			e := b.metric(`smsbridge_sms_api_requests_total{account="primary",class="error"}`)
			return e >= 3*20, fmt.Sprintf("%v failed requests", e)
		})
		if p := b.metric("smsbridge_outbox_pending"); p != float64(len(w)) {
			t.Errorf("smsbridge_outbox_pending %v while refused, want %d", p, len(w))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("provider back on %s: %v", addr, err)
		}
		srv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		waitDelivered(t, fake, w, 60*time.Second, b)
		if f := b.sum("smsbridge_deliveries_failed_total"); f != 0 {
			t.Errorf("%v deliveries failed while the provider was unreachable", f)
		}
		b.checkLog()
	})
}

// TestAccountFaults refuses the account the three ways the provider
// documents (401 bad key, 403 suspended, 405 no credits). The bridge holds
// the whole queue, shows why in smsbridge_dispatch_held and
// smsbridge_dispatch_held_reason, only probes while held, and delivers
// everything once the account is fine again.
func TestAccountFaults(t *testing.T) {
	nums := numbers(2)
	for _, tc := range []struct {
		status int
		kind   string
	}{
		{http.StatusUnauthorized, "unauthorized"},
		{http.StatusForbidden, "suspended"},
		{http.StatusMethodNotAllowed, "no_credits"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
			defer fake.Close()
			heal := func() { fake.ClearFaults() }
			if tc.status == http.StatusMethodNotAllowed {
				// The real thing: a balance too small for any message.
				fake.SetCredits(0)
				heal = func() { fake.SetCredits(smsfake.Unlimited) }
			} else {
				fake.FailRate(1, smsfake.Fault{Status: tc.status})
			}
			const holdRetry = 500 * time.Millisecond
			s := newSetup(t, config{ProviderURL: fake.URL, HoldRetry: holdRetry.String(), Numbers: nums})
			b := start(t, s.args()...)
			w := want{}
			for i := range 10 {
				name := fmt.Sprintf("Account%04d", i)
				b.mustAccept(name)
				w.add(name, nums)
			}
			binarytest.Eventually(t, 30*time.Second, "queue held", func() (bool, string) {
				h := b.metric(`smsbridge_dispatch_held{account="primary"}`)
				r := b.metric(fmt.Sprintf(`smsbridge_dispatch_held_reason{account="primary",kind=%q}`, tc.kind))
				return h == 1 && r == 1, fmt.Sprintf("held %v, reason %s %v", h, tc.kind, r)
			})
			// While held, the bridge only probes: over a few hold_retry
			// periods it sends about one request each, not one per row.
			before := fake.Requests()
			const watch = 4 * holdRetry
			time.Sleep(watch)
			probes := fake.Requests() - before
			if limit := int(watch/holdRetry) + 2; probes > limit {
				t.Errorf("%d requests in %s while held (hold_retry %s); want at most %d probes", probes, watch, holdRetry, limit)
			}
			if got := fake.Accepted(); got != 0 {
				t.Fatalf("%d messages accepted while the account was refused", got)
			}
			if p := b.metric("smsbridge_outbox_pending"); p != float64(len(w)) {
				t.Errorf("smsbridge_outbox_pending %v while held, want %d", p, len(w))
			}
			heal()
			waitDelivered(t, fake, w, 30*time.Second, b)
			binarytest.Eventually(t, 10*time.Second, "hold released", func() (bool, string) {
				h := b.metric(`smsbridge_dispatch_held{account="primary"}`)
				r := b.metric(fmt.Sprintf(`smsbridge_dispatch_held_reason{account="primary",kind=%q}`, tc.kind))
				return h == 0 && r == 0, fmt.Sprintf("held %v, reason %v", h, r)
			})
			if f := b.sum("smsbridge_deliveries_failed_total"); f != 0 {
				t.Errorf("%v deliveries failed while the account was refused; a hold must not fail rows", f)
			}
			t.Logf("%d probes in %s while held; all %d numbers delivered after", probes, watch, len(w))
			b.checkLog()
		})
	}
}
