package dispatch

import (
	"errors"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/sms"
)

// Account is one provider account: how to send through it, and how fast.
type Account struct {
	// Name labels the account in metrics, logs and the store: "primary"
	// or "fallback".
	Name string
	// Provider sends; it keeps no pace state of its own.
	Provider sms.Provider
	// RateLimit is the most requests per second the account allows.
	RateLimit float64
}

// Settings are one configuration generation's dispatch settings. Every
// field must be set: the configuration applies the defaults.
type Settings struct {
	// Accounts are the primary account and, optionally, a fallback.
	Accounts []Account
	// BatchSize is the most numbers in one request.
	BatchSize int
	// MaxInFlight is the most requests on the wire at once, over all
	// accounts.
	MaxInFlight int
	// MinBackoff and MaxBackoff bound the retry delay after a 5xx or a
	// network failure.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long after receipt a delivery may still be sent; then
	// it fails with reason max_age.
	MaxAge time.Duration
	// HoldRetry is the least time from the end of one request through a
	// held (or failed-over) account to the start of the next, a probe.
	HoldRetry time.Duration
	// HoldReminder is how often a held account is logged again at error
	// level.
	HoldReminder time.Duration
	// DefaultPause is the pause after a 429 that names no wait.
	DefaultPause time.Duration
	// FallbackAfter is how long the primary must fail every attempt before
	// the fallback account takes over.
	FallbackAfter time.Duration
	// LeaseFor is how long a leased batch belongs to its request before
	// the store hands it out again; it must exceed the provider's timeout.
	LeaseFor time.Duration
	// ShutdownGrace is how long requests in flight may finish after Run's
	// context ends before they are cut off and their rows released.
	ShutdownGrace time.Duration
	// Limits are the per-number throttle and the daily budget; the zero
	// value limits nothing.
	Limits Limits
}

// Validate reports settings the dispatcher cannot run with.
func (s Settings) Validate() error {
	var errs []error
	if len(s.Accounts) == 0 || len(s.Accounts) > 2 {
		errs = append(errs, fmt.Errorf("dispatch: %d accounts, want a primary and at most one fallback", len(s.Accounts)))
	}
	seen := map[string]bool{}
	for i, a := range s.Accounts {
		switch {
		case a.Name == "" || seen[a.Name]:
			errs = append(errs, fmt.Errorf("dispatch: account %d has an empty or repeated name %q", i, a.Name))
		case a.Provider == nil:
			errs = append(errs, fmt.Errorf("dispatch: account %q has no provider", a.Name))
		case !(a.RateLimit > 0):
			errs = append(errs, fmt.Errorf("dispatch: account %q rate limit %v must be above 0", a.Name, a.RateLimit))
		}
		seen[a.Name] = true
	}
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"min backoff", s.MinBackoff}, {"max backoff", s.MaxBackoff}, {"max age", s.MaxAge},
		{"hold retry", s.HoldRetry}, {"hold reminder", s.HoldReminder}, {"default pause", s.DefaultPause},
		{"fallback after", s.FallbackAfter}, {"lease", s.LeaseFor}, {"shutdown grace", s.ShutdownGrace},
	}
	for _, p := range positive {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("dispatch: %s %s must be above 0", p.name, p.v))
		}
	}
	if s.MinBackoff > s.MaxBackoff {
		errs = append(errs, fmt.Errorf("dispatch: min backoff %s is longer than max backoff %s", s.MinBackoff, s.MaxBackoff))
	}
	if s.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("dispatch: batch size %d must be at least 1", s.BatchSize))
	}
	if s.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("dispatch: max in flight %d must be at least 1", s.MaxInFlight))
	}
	return errors.Join(errs...)
}

// AutoInFlight is the number of requests on the wire at once that keeps an
// account at its full rate whatever the provider's latency, up to a second
// of it: one second's worth of requests, and never fewer than 2.
func AutoInFlight(rateLimit float64) int {
	return min(max(2, int(rateLimit+0.999)), 64)
}

// spacing is the least time between two request starts through an account
// allowed rateLimit requests a second. It keeps a margin under the limit:
// with requests exactly 1/rate apart, the (rate+1)-th leaves one second
// after the first, and a provider counting per one-second window sees
// rate+1 whenever the first was a little late, answers 429 and costs a
// whole pause (docs/performance.md).
func spacing(rateLimit float64) time.Duration {
	return time.Duration(float64(time.Second) / (rateLimit * rateMargin))
}

// lookahead is how long before a request's slot the loop may lease its
// batch: the lease's time then overlaps the wait for the slot, and a
// lease that stalls for less than the lookahead (a busy database: 20 to
// 80 ms now and then on PostgreSQL on a loaded machine) delays no
// request. It was once at most one spacing (20.6 ms at 50 requests a
// second), and every stall longer than that pushed all later slots back:
// the drain at 200 ms of provider latency reached 91-95% of the limit on
// PostgreSQL (docs/performance.md). At high rates the loop is so several
// requests ahead; each waits for its slot, checks the pause just before
// it goes, and returns its rows to the queue if the term or the run ends
// first. Below about 10 requests a second it stays under one spacing.
func lookahead(float64) time.Duration {
	return 100 * time.Millisecond
}

// rateMargin is the share of the rate limit the dispatcher uses.
const rateMargin = 0.97
