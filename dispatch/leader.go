package dispatch

import (
	"context"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// leadRetry is the wait after Lead failed for a reason other than ctx.
const leadRetry = time.Second

// lead runs the dispatcher only while this process leads the store's
// replicas: it waits for a term, dispatches until the term is lost or ctx
// ends, resigns, and waits for the next term. Each term starts from the
// pause and hold in the store, as a restart does, since the previous
// leader may have changed them.
func (d *Dispatcher) lead(ctx context.Context) error {
	d.m.leader.Set(0)
	const waiting = "waiting for the dispatch lock: another replica may be dispatching; this one takes intake and callbacks meanwhile"
	d.logger.Info(waiting)
	for {
		t, err := d.leader.Lead(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.logger.Error("cannot wait for the dispatch lock; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(leadRetry):
			}
			continue
		}
		d.runLeaderTerm(ctx, t)
		if ctx.Err() != nil {
			return nil
		}
		d.logger.Info(waiting)
	}
}

// runLeaderTerm dispatches for one term and resigns it.
func (d *Dispatcher) runLeaderTerm(ctx context.Context, t outbox.Term) {
	defer t.Resign()
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.Lost():
			cancel()
		case <-tctx.Done():
		}
	}()
	// The store says how long ago an earlier leader could last have sent
	// (outbox.Term.StartDelay): a provider counting requests per second
	// then never sees two leaders' requests in one second.
	if wait := t.StartDelay(); wait > 0 {
		select {
		case <-tctx.Done():
		case <-time.After(wait):
		}
	}
	if tctx.Err() == nil {
		d.m.setLeader(true)
		defer d.m.setLeader(false)
		d.logger.Info("this replica now dispatches (it holds the dispatch lock)")
		d.mu.Lock()
		d.paces = map[string]*pace{}
		d.mu.Unlock()
		_ = d.runTerm(tctx) // it returns nil once tctx ends
	}
	select {
	case <-t.Lost():
		if ctx.Err() == nil {
			d.logger.Warn("this replica lost the dispatch lock and stopped dispatching; another replica takes over")
		}
	default:
	}
}
