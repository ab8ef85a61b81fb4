package auth

import (
	"container/heap"
	"crypto/sha256"
	"sync"
	"time"
)

// replayCache remembers recently accepted messages until they would fail the
// timestamp check anyway. It is bounded: at the cap the entry that expires
// soonest is dropped, which weakens replay protection only for that entry and
// only under a flood of genuinely signed messages.
type replayCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*replayEntry
	byExp   expiryHeap
}

type replayEntry struct {
	key   [sha256.Size]byte
	exp   time.Time
	index int
}

func newReplayCache(size int) *replayCache {
	return &replayCache{max: size, entries: make(map[[sha256.Size]byte]*replayEntry)}
}

// seen reports whether key is remembered; if not, it remembers it until exp.
// Checking and recording under one lock means two concurrent copies of a
// message cannot both pass.
func (c *replayCache) seen(key [sha256.Size]byte, exp, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// An entry is still needed at exactly its expiry: a replay then is still
	// within tolerance.
	for len(c.byExp) > 0 && c.byExp[0].exp.Before(now) {
		delete(c.entries, heap.Pop(&c.byExp).(*replayEntry).key)
	}
	if _, ok := c.entries[key]; ok {
		return true
	}
	if len(c.entries) >= c.max {
		delete(c.entries, heap.Pop(&c.byExp).(*replayEntry).key)
	}
	e := &replayEntry{key: key, exp: exp}
	heap.Push(&c.byExp, e)
	c.entries[key] = e
	return false
}

func (c *replayCache) forget(key [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		heap.Remove(&c.byExp, e.index)
		delete(c.entries, key)
	}
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []*replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*replayEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
