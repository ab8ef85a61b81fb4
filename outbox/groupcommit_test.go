package outbox

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestGroupCommit: queued calls are committed in batches of at most the
// batch size, each answered with what its commit recorded, or all with the
// commit's error; a call abandoned before a writer took it is never
// committed; a closed queue fails its callers with ErrClosed.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	g := NewGroupCommit(3, done)
	var mu sync.Mutex
	var sizes []int
	var committed []string
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go g.Run(func(batch []*Pending) {
		once.Do(func() { close(entered) })
		<-release
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		var err error
		for i, p := range batch {
			if p.N.Source == "fail" {
				err = errors.New("disk on fire")
			}
			mu.Lock()
			committed = append(committed, p.N.Source)
			mu.Unlock()
			p.Res = Enqueued{ID: int64(i + 1)}
		}
		Answer(batch, err)
	})

	// The writer takes the first call and waits on release; the calls
	// behind it queue up, one of them abandoned by its caller.
	type result struct {
		e   Enqueued
		err error
	}
	start := func(ctx context.Context, src string) chan result {
		ch := make(chan result, 1)
		go func() {
			e, err := g.Submit(ctx, Notification{Source: src})
			ch <- result{e, err}
		}()
		return ch
	}
	first := start(context.Background(), "a")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	abandoned := start(ctx, "abandoned")
	waitFor(t, func() bool { return g.Queued() == 1 })
	cancel()
	if r := <-abandoned; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("abandoned call: %v, want context.Canceled", r.err)
	}
	rest := []chan result{start(context.Background(), "b")}
	waitFor(t, func() bool { return g.Queued() == 2 })
	rest = append(rest, start(context.Background(), "c"))
	waitFor(t, func() bool { return g.Queued() == 3 })
	rest = append(rest, start(context.Background(), "d"))
	waitFor(t, func() bool { return g.Queued() == 4 })
	rest = append(rest, start(context.Background(), "fail"))
	waitFor(t, func() bool { return g.Queued() == 5 })
	close(release)

	if r := <-first; r.err != nil || r.e.ID != 1 {
		t.Errorf("first call: %+v %v", r.e, r.err)
	}
	// b, c, d in one batch (the abandoned call skipped), fail alone.
	for i, ch := range rest[:3] {
		if r := <-ch; r.err != nil || r.e.ID != int64(i+1) {
			t.Errorf("call %d: %+v %v, want id %d", i, r.e, r.err, i+1)
		}
	}
	if r := <-rest[3]; r.err == nil || r.e.ID != 0 {
		t.Errorf("failed commit answered %+v %v, want its error", r.e, r.err)
	}
	mu.Lock()
	if got := committed; len(got) != 5 || got[0] != "a" || got[4] != "fail" {
		t.Errorf("committed %v, want a b c d fail", got)
	}
	for _, n := range sizes {
		if n > 3 {
			t.Errorf("a batch of %d, above the size 3", n)
		}
	}
	mu.Unlock()

	close(done)
	if _, err := g.Submit(context.Background(), Notification{}); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v, want ErrClosed", err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
