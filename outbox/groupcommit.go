package outbox

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Pending is one Enqueue call waiting in a GroupCommit: the notification
// to record and, once a writer committed it, what was recorded.
type Pending struct {
	N Notification
	// Res is what the commit recorded for N; Err, set by Answer, fails
	// the call.
	Res Enqueued
	Err error
	// claim settles a race: a writer takes the call (0→1) or its caller
	// abandons it (0→2), never both, so a call a writer took is always
	// answered and one the caller gave up on is never written.
	claim atomic.Int32
	done  chan struct{}
}

const (
	pendingWaiting int32 = iota
	pendingTaken
	pendingAbandoned
)

// GroupCommit is a driver's queue of Enqueue calls: writer goroutines
// (Run) take the first waiting call and every call queued behind it, up
// to the batch size, and commit them in one transaction.
type GroupCommit struct {
	calls chan *Pending
	max   int
	// done ends the queue: waiting callers fail with ErrClosed, writers
	// return.
	done <-chan struct{}
}

// NewGroupCommit returns a queue of batches of at most max calls (and
// room for four batches waiting), which ends when done is closed.
func NewGroupCommit(max int, done <-chan struct{}) *GroupCommit {
	return &GroupCommit{calls: make(chan *Pending, 4*max), max: max, done: done}
}

// Submit checks n (Validate), queues it and waits for a writer's answer.
// A ctx that ends before a writer takes the call abandons it (nothing is
// written); once taken, the call waits for its commit.
func (g *GroupCommit) Submit(ctx context.Context, n Notification) (Enqueued, error) {
	n, err := Validate(n)
	if err != nil {
		return Enqueued{}, err
	}
	if err := ctx.Err(); err != nil {
		return Enqueued{}, fmt.Errorf("enqueue: %w", err)
	}
	p := &Pending{N: n, done: make(chan struct{})}
	select {
	case g.calls <- p:
	case <-ctx.Done():
		return Enqueued{}, fmt.Errorf("enqueue: %w", ctx.Err())
	case <-g.done:
		return Enqueued{}, ErrClosed
	}
	select {
	case <-p.done:
		return p.Res, p.Err
	case <-ctx.Done():
		if p.claim.CompareAndSwap(pendingWaiting, pendingAbandoned) {
			return Enqueued{}, fmt.Errorf("enqueue: %w", ctx.Err())
		}
	case <-g.done:
		if p.claim.CompareAndSwap(pendingWaiting, pendingAbandoned) {
			return Enqueued{}, ErrClosed
		}
	}
	<-p.done
	return p.Res, p.Err
}

// Run is one writer: until the queue ends, it takes a batch and calls
// commit, which must Answer every call in it.
func (g *GroupCommit) Run(commit func(batch []*Pending)) {
	batch := make([]*Pending, 0, g.max)
	for {
		select {
		case <-g.done:
			return
		case p := <-g.calls:
			batch = batch[:0]
			if p.claim.CompareAndSwap(pendingWaiting, pendingTaken) {
				batch = append(batch, p)
			}
		drain:
			for len(batch) < g.max {
				select {
				case p := <-g.calls:
					if p.claim.CompareAndSwap(pendingWaiting, pendingTaken) {
						batch = append(batch, p)
					}
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				commit(batch)
			}
		}
	}
}

// Queued counts the calls waiting for a writer.
func (g *GroupCommit) Queued() int { return len(g.calls) }

// Answer ends every call of batch: with its Res, or all with err.
func Answer(batch []*Pending, err error) {
	for _, p := range batch {
		if err != nil {
			p.Res, p.Err = Enqueued{}, err
		}
		close(p.done)
	}
}
