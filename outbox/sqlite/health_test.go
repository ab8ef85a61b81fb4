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
