package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// TestStorageGone: once the directory the store opened is removed or
// replaced, Health says so and Enqueue refuses (so the intake answers 503)
// instead of committing to a file that a restart would never open again.
// Before this check both succeeded and the notification was lost.
func TestStorageGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spoil func(dir string) error
	}{
		{"removed", os.RemoveAll},
		{"replaced", func(dir string) error {
			if err := os.Rename(dir, dir+".old"); err != nil {
				return err
			}
			return os.Mkdir(dir, 0o750)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			s := mustOpen(t, dir, Options{Retention: week})
			ctx := context.Background()
			if err := s.Health(ctx); err != nil {
				t.Fatalf("health before: %v", err)
			}
			enqueue(t, s, withID(note("before"), "x:1"))
			if err := tc.spoil(dir); err != nil {
				t.Fatal(err)
			}
			err := s.Health(ctx)
			if !errors.Is(err, ErrStorageGone) || !strings.Contains(err.Error(), dir) {
				t.Errorf("health: %v, want ErrStorageGone naming %s", err, dir)
			}
			if _, err := s.Enqueue(ctx, withID(note("after"), "x:2")); !errors.Is(err, ErrStorageGone) {
				t.Errorf("enqueue into a gone directory: err = %v, want ErrStorageGone", err)
			}
		})
	}
}

func withID(n outbox.Notification, id string) outbox.Notification {
	n.DeliveryID, n.DeliveryIDExpires = id, time.Now().Add(time.Hour)
	return n
}

// TestDeliveryIDNotBurned: a commit that fails (a full disk) records no
// delivery id, so the sender's retry after its 503 is stored and sent.
func TestDeliveryIDNotBurned(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), Options{Retention: week})
	ctx := context.Background()
	enqueue(t, s, note("before"))
	var pages int
	if err := s.wdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	if _, err := s.Enqueue(ctx, withID(note(big), "github:d1")); err == nil {
		t.Fatal("enqueue on a full database succeeded")
	}
	if _, err := s.wdb.Exec("PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if r := enqueue(t, s, withID(note(big), "github:d1")); r.Outcome != outbox.OutcomeAccepted || r.Recipients != 2 {
		t.Errorf("retry after the failed commit: %+v, want accepted", r)
	}
	if r := enqueue(t, s, withID(note(big), "github:d1")); r.Outcome != outbox.OutcomeDuplicate {
		t.Errorf("second retry: %+v, want duplicate", r)
	}
}

// TestHealthWriteProbe: a store that cannot write reports it, and
// recovers when it can again.
func TestHealthWriteProbe(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), Options{Retention: week})
	ctx := context.Background()
	if _, err := s.wdb.Exec("PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(ctx); err == nil || !strings.Contains(err.Error(), "write probe failed") {
		t.Errorf("health of a read-only store: %v", err)
	}
	if _, err := s.wdb.Exec("PRAGMA query_only = 0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(ctx); err != nil {
		t.Errorf("health after recovery: %v", err)
	}
}

// TestReserve drives the reserve file by a simulated free space: made at
// open, given back when less than its size is free (and intake refused
// from MinFree down), made again with a WAL checkpoint once space returns.
func TestReserve(t *testing.T) {
	t.Parallel()
	const minFree = 2 << 20
	dir := t.TempDir()
	var logs syncBuffer
	s := mustOpen(t, dir, Options{Retention: week, MinFree: minFree, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	reserve := filepath.Join(dir, ReserveFileName)
	size := func() int64 {
		fi, err := os.Stat(reserve)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	if got := size(); got != minFree/2 {
		t.Fatalf("reserve after open: %d bytes, want %d", got, minFree/2)
	}
	var free atomic.Int64
	s.freeSpace = func(string) (int64, error) { return free.Load(), nil }
	ctx := context.Background()
	steps := []struct {
		name    string
		free    int64
		reserve int64
		err     error
		msg     string
	}{
		{"plenty", 100 << 20, minFree / 2, nil, ""},
		{"below min free: intake refused, reserve kept", minFree - 1, minFree / 2, ErrLowSpace, "below storage.min_free (2.0 MiB)"},
		{"nearly full: reserve released", minFree/2 - 1, 0, ErrLowSpace, "below storage.min_free"},
		{"space back to min free, no room for the reserve yet", minFree + 1, 0, ErrLowSpace, "no reserve file"},
		{"space returned: reserve made again", minFree + minFree/2, minFree / 2, nil, ""},
	}
	for _, st := range steps {
		free.Store(st.free)
		err := s.Health(ctx)
		// While space is low, Enqueue refuses at once (not only once the
		// cached health answer turns), and the WAL is checkpointed often
		// so that it stops growing.
		_, enqErr := s.Enqueue(ctx, note("x"))
		wantPages := walCheckpointPages
		if st.err != nil {
			wantPages = lowWALCheckpointPages
			if !errors.Is(enqErr, ErrLowSpace) {
				t.Errorf("%s: enqueue err = %v, want ErrLowSpace", st.name, enqErr)
			}
		} else if enqErr != nil {
			t.Errorf("%s: enqueue: %v", st.name, enqErr)
		}
		if got := s.wdbAutocheckpoint(t); got != wantPages {
			t.Errorf("%s: wal_autocheckpoint = %d, want %d", st.name, got, wantPages)
		}
		switch {
		case st.err == nil && err != nil:
			t.Errorf("%s: health %v", st.name, err)
		case st.err != nil && (!errors.Is(err, st.err) || !strings.Contains(err.Error(), st.msg)):
			t.Errorf("%s: health %v, want %v with %q", st.name, err, st.err, st.msg)
		}
		if got := size(); got != st.reserve {
			t.Errorf("%s: reserve %d bytes, want %d", st.name, got, st.reserve)
		}
	}
	for _, want := range []string{"released the reserve file", "reserve restored and WAL checkpointed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if _, err := os.Stat(reserve + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary reserve file left behind: %v", err)
	}
}

// TestReserveReleasedOnFullWrite: a write that fails because the disk is
// full gives the reserve back at once, before the next health check, so
// the dispatcher's retry of Complete finds room.
func TestReserveReleasedOnFullWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Retention: week, MinFree: 2 << 20})
	reserve := filepath.Join(dir, ReserveFileName)
	if _, err := os.Stat(reserve); err != nil {
		t.Fatalf("no reserve after open: %v", err)
	}
	var pages int
	if err := s.wdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(context.Background(), note(strings.Repeat("x", 64<<10))); err == nil {
		t.Fatal("enqueue on a full database succeeded")
	}
	if _, err := os.Stat(reserve); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reserve still there after a disk-full write: %v", err)
	}
}

// TestNoReserveWithoutMinFree: MinFree 0 turns the space check and the
// reserve off.
func TestNoReserveWithoutMinFree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Retention: week})
	s.freeSpace = func(string) (int64, error) { return 0, nil }
	if err := s.Health(context.Background()); err != nil {
		t.Errorf("health: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ReserveFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reserve made without MinFree: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{Retention: week, MinFree: -1}); err == nil {
		t.Error("negative MinFree accepted")
	}
}

// wdbAutocheckpoint reads the writer connection's WAL checkpoint threshold.
func (s *Store) wdbAutocheckpoint(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.wdb.QueryRow("PRAGMA wal_autocheckpoint").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLowSpaceDrains: in the low-space mode new notifications are
// refused, but what was accepted still goes through the whole send path:
// leased, admitted under a throttle (some held), completed, the held ones
// released as a digest (a new notification the store writes itself),
// leased, admitted and completed in turn.
func TestLowSpaceDrains(t *testing.T) {
	t.Parallel()
	const minFree = 2 << 20
	s := mustOpen(t, t.TempDir(), Options{Retention: week, MinFree: minFree})
	var free atomic.Int64
	free.Store(100 << 20)
	s.freeSpace = func(string) (int64, error) { return free.Load(), nil }
	ctx := context.Background()
	for _, text := range []string{"a", "b", "c"} {
		enqueue(t, s, note(text))
	}
	free.Store(minFree/2 - 1)
	if err := s.Health(ctx); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("health on a nearly full disk: %v", err)
	}
	if _, err := s.Enqueue(ctx, note("refused")); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("enqueue in the low-space mode: %v, want ErrLowSpace", err)
	}

	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: 10 * time.Second}}}
	t0 := time.Now()
	send := func(now time.Time) (sent, held int) {
		t.Helper()
		for _, b := range lease(t, s, now, 10, 10) {
			adm, err := s.Admit(ctx, now, b.Deliveries, limits)
			if err != nil {
				t.Fatalf("admit in the low-space mode: %v", err)
			}
			var outs []outbox.Outcome
			for _, d := range adm.Send {
				outs = append(outs, outbox.Accepted(d, "primary", fmt.Sprint("api-", d.ID)))
			}
			if err := s.Complete(ctx, outs); err != nil {
				t.Fatalf("complete in the low-space mode: %v", err)
			}
			sent, held = sent+len(adm.Send), held+len(adm.Held)
		}
		return sent, held
	}
	if sent, held := send(t0); sent != 2 || held != 4 {
		t.Fatalf("first pass: %d sent, %d held; want one per number sent, the rest held", sent, held)
	}
	rel, err := s.Release(ctx, t0.Add(time.Minute), func(held []outbox.Record) (outbox.Message, error) {
		return outbox.Message{Receiver: "r0", Text: fmt.Sprintf("%d held", len(held)), Segments: 1}, nil
	})
	if err != nil || len(rel) != 2 || rel[0].Digest == 0 {
		t.Fatalf("release in the low-space mode: %+v %v", rel, err)
	}
	if sent, held := send(t0.Add(time.Minute)); sent != 2 || held != 0 {
		t.Errorf("digests: %d sent, %d held; want one per number", sent, held)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 0 || st.Held != 0 {
		t.Errorf("left after draining: %+v", st)
	}
	if _, err := s.Enqueue(ctx, note("still refused")); !errors.Is(err, ErrLowSpace) {
		t.Errorf("enqueue after draining: %v, want ErrLowSpace", err)
	}
}
