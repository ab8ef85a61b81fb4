package postgres

import (
	"testing"
	"time"
)

// TestHandoverWait: a new leader waits a provider second after the last
// moment an earlier leader could have sent, and no longer.
func TestHandoverWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, tc := range []struct {
		name string
		prev previousLeader
		want time.Duration
	}{
		{"no earlier leader", previousLeader{}, 0},
		{"unknown end (a release without heartbeats)", previousLeader{found: true}, providerWindow},
		{"clean end long ago", previousLeader{found: true, beat: ago(time.Hour), ended: ago(time.Hour)}, 0},
		{"clean end just over a second ago", previousLeader{found: true, beat: ago(1001 * time.Millisecond), ended: ago(1001 * time.Millisecond)}, 0},
		{"clean end 300 ms ago", previousLeader{found: true, beat: ago(300 * time.Millisecond), ended: ago(300 * time.Millisecond)}, 700 * time.Millisecond},
		{"clean end just now", previousLeader{found: true, beat: now, ended: now}, providerWindow},
		// A leader cut off from the database goes on until leaderLease
		// after its last heartbeat, and stopMargin more.
		{"heartbeat old enough", previousLeader{found: true, beat: ago(leaderLease + stopMargin + providerWindow)}, 0},
		{"heartbeat old, not old enough", previousLeader{found: true, beat: ago(leaderLease + stopMargin + 400*time.Millisecond)}, 600 * time.Millisecond},
		// A heartbeat within leaderLease: the earlier leader may have sent
		// until this store took the lock.
		{"recent heartbeat", previousLeader{found: true, beat: ago(200 * time.Millisecond)}, providerWindow},
		{"heartbeat 5 s ago", previousLeader{found: true, beat: ago(5 * time.Second)}, providerWindow},
		// The server's clock went back: never wait more than a second after
		// the takeover, which bounds every earlier leader's last request.
		{"clean end in the future", previousLeader{found: true, beat: now.Add(time.Minute), ended: now.Add(time.Minute)}, providerWindow},
		{"heartbeat in the future", previousLeader{found: true, beat: now.Add(time.Minute)}, providerWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := handoverWait(tc.prev, now); got != tc.want {
				t.Errorf("handoverWait = %v, want %v", got, tc.want)
			}
		})
	}
}
