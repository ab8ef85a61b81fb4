package auth

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

func key(i int) [sha256.Size]byte { return replayKey("msg_"+strconv.Itoa(i), "1") }

func TestReplayCacheExpiry(t *testing.T) {
	t.Parallel()
	c := newReplayCache(100)
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		// Expiries out of insertion order exercise the heap.
		if c.seen(key(i), t0.Add(time.Duration((i*7)%10)*time.Second), t0) {
			t.Fatalf("fresh key %d reported seen", i)
		}
	}
	if !c.seen(key(3), t0.Add(time.Hour), t0) {
		t.Fatal("known key not reported")
	}
	// At exactly an expiry the entry is kept; one tick later it is gone.
	c.seen(key(100), t0.Add(time.Hour), t0.Add(4*time.Second))
	if got := c.len(); got != 11-4 {
		t.Fatalf("len = %d after pruning the four expired before t0+4s, want 7", got)
	}
	for i := range 10 {
		exp := time.Duration((i*7)%10) * time.Second
		if exp < 4*time.Second {
			continue
		}
		if !c.seen(key(i), t0.Add(time.Hour), t0.Add(4*time.Second)) {
			t.Fatalf("key %d (expiry +%s) forgotten too early", i, exp)
		}
	}
	c.seen(key(101), t0.Add(time.Hour), t0.Add(time.Minute))
	if got := c.len(); got != 2 {
		t.Fatalf("len = %d, want the 2 long-lived keys", got)
	}
}

func TestReplayCacheCap(t *testing.T) {
	t.Parallel()
	c := newReplayCache(3)
	t0 := time.Unix(1000, 0)
	c.seen(key(1), t0.Add(30*time.Second), t0)
	c.seen(key(2), t0.Add(10*time.Second), t0)
	c.seen(key(3), t0.Add(20*time.Second), t0)
	c.seen(key(4), t0.Add(40*time.Second), t0)
	if got := c.len(); got != 3 {
		t.Fatalf("len = %d, want the cap 3", got)
	}
	// The soonest-expiring entry (2) made room.
	if c.seen(key(2), t0.Add(10*time.Second), t0) {
		t.Fatal("evicted key still reported")
	}
	for _, i := range []int{1, 4} {
		if !c.seen(key(i), t0, t0) {
			t.Fatalf("key %d evicted instead of the soonest-expiring one", i)
		}
	}
}

func TestReplayCacheForget(t *testing.T) {
	t.Parallel()
	c := newReplayCache(10)
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		c.seen(key(i), t0.Add(time.Duration(i)*time.Second), t0)
	}
	c.forget(key(2))
	c.forget(key(99))
	if got := c.len(); got != 4 {
		t.Fatalf("len = %d, want 4", got)
	}
	if c.seen(key(2), t0.Add(time.Minute), t0) {
		t.Fatal("forgotten key reported")
	}
	// The heap stays consistent after a removal from its middle: pruning
	// removes exactly the entries that expired.
	c.seen(key(50), t0.Add(time.Hour), t0.Add(3500*time.Millisecond))
	if got := c.len(); got != 3 {
		t.Fatalf("len = %d, want keys 4, 2 and 50", got)
	}
}
