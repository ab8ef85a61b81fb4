package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	sqlite3 "modernc.org/sqlite"
)

// ReserveFileName is the file of spare space the store keeps in its
// directory (see Options.MinFree).
const ReserveFileName = "reserve"

// maxReserve is the largest reserve file: a few MiB is room for thousands
// of lease and complete transactions, which is what it is for.
const maxReserve = 4 << 20

// healthKey is the state row the write probe updates.
const healthKey = "smsbridge.health_probe"

// WAL checkpoint thresholds, in pages. SQLite's default lets the WAL grow
// to about 4 MiB before it is folded into the database and reused from its
// start; while space is low the store checkpoints after every few pages,
// so the WAL reuses the space it has instead of growing into the little
// that is left. Normal operation keeps the default: checkpoints cost
// syncs of the database file.
const (
	walCheckpointPages    = 1000
	lowWALCheckpointPages = 16
)

// ErrStorageGone is wrapped by the errors of Enqueue and Health once the
// storage directory the store opened was removed or replaced: the database
// the store still has open is then a file nobody will open again, and only
// a restart on the directory that is there now can help.
var ErrStorageGone = errors.New("storage directory removed or replaced")

// ErrLowSpace is wrapped by Health's error while free space is below
// Options.MinFree or the reserve is spent.
var ErrLowSpace = errors.New("storage nearly full")

// checkDir fails when the directory the store opened is no longer at its
// path: removed, or replaced by another one (compared by device and inode).
func (s *Store) checkDir() error {
	fi, err := os.Stat(s.dir)
	if err != nil || !os.SameFile(fi, s.dirInfo) {
		return fmt.Errorf("%w: %s is not the directory the outbox opened; new notifications cannot be stored durably until smsbridge restarts on it", ErrStorageGone, s.dir)
	}
	return nil
}

// Health reports whether a notification enqueued now would be durable: the
// storage directory is the one the store opened, at least Options.MinFree
// is free and the reserve is in place, and a small write commits. It also
// keeps the reserve: it gives the space back when the disk is nearly full,
// so the dispatcher can still lease and complete what was accepted, and
// takes it again (and checkpoints the WAL) once space has returned. Call
// it about once a second and cache the answer; it costs one small write.
func (s *Store) Health(ctx context.Context) error {
	if err := s.closed(); err != nil {
		return err
	}
	if err := s.checkDir(); err != nil {
		return err
	}
	if err := s.keepReserve(ctx); err != nil {
		return err
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO state (key, value, updated_at) VALUES (?, x'', ?)
		ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at`, healthKey, ms(s.clock())); err != nil {
		s.noteFull(err)
		return fmt.Errorf("write probe failed: %w", err)
	}
	return nil
}

// keepReserve releases or restores the reserve by the free space, and
// reports ErrLowSpace while intake should be refused.
func (s *Store) keepReserve(ctx context.Context) error {
	if s.minFree <= 0 {
		return nil
	}
	free, err := s.freeSpace(s.dir)
	if err != nil {
		return fmt.Errorf("read the free space of %s: %w", s.dir, err)
	}
	if free < 0 {
		return nil // unknown on this system
	}
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	present := s.reservePresent()
	switch {
	case present && free < s.reserveSize:
		s.makeRoom(ctx, "less free space than the reserve")
		present = false
	case !present && free >= s.minFree+s.reserveSize:
		if err := s.makeReserve(); err != nil {
			s.logger.Warn("cannot restore the reserve file", "path", s.reservePath(), "err", err)
		} else {
			present = true
			free -= s.reserveSize
			// The WAL may have grown while checkpoints could not run;
			// fold it into the database and give its space back.
			if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				s.logger.Warn("checkpoint after space returned", "err", err)
			}
			s.logger.Info("free space returned: reserve restored and WAL checkpointed", "free_bytes", free)
		}
	}
	var low error
	switch {
	case free < s.minFree:
		low = fmt.Errorf("%w: %s free on %s, below storage.min_free (%s); new notifications are refused until space is freed",
			ErrLowSpace, formatBytes(free), s.dir, formatBytes(s.minFree))
	case !present:
		low = fmt.Errorf("%w: no reserve file on %s (the disk filled, or there was no room for it); new notifications are refused until %s is free",
			ErrLowSpace, s.dir, formatBytes(s.minFree+s.reserveSize))
	}
	s.setLow(ctx, low != nil)
	return low
}

// setLow enters or leaves the low-space mode: Enqueue refuses at once
// (the health check's answer is cached for a while), and the WAL is
// checkpointed often so that it stops growing.
func (s *Store) setLow(ctx context.Context, on bool) {
	if s.low.Swap(on) == on {
		return
	}
	pages := walCheckpointPages
	if on {
		pages = lowWALCheckpointPages
	}
	// The writer pool holds one connection for the store's life, so the
	// setting stays with it.
	if _, err := s.wdb.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", pages)); err != nil {
		s.logger.Warn("set the WAL checkpoint threshold", "pages", pages, "err", err)
	}
}

func (s *Store) reservePath() string { return filepath.Join(s.dir, ReserveFileName) }

func (s *Store) reservePresent() bool {
	fi, err := os.Stat(s.reservePath())
	return err == nil && fi.Size() >= s.reserveSize
}

// makeRoom gives back the reserve file, if it is still there, and
// checkpoints the WAL so that the next writes reuse it from its start
// instead of growing it; s.reserveMu is held. What the dispatcher records
// (leases, results) then fits in the space freed.
func (s *Store) makeRoom(ctx context.Context, why string) {
	err := os.Remove(s.reservePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		s.logger.Error("cannot release the reserve file", "path", s.reservePath(), "err", err)
	default:
		s.logger.Error("disk nearly full: released the reserve file so that accepted notifications can still be sent; new ones are refused",
			"reason", why, "reserve_bytes", s.reserveSize, "path", s.dir)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s.setLow(cctx, true)
	if _, err := s.wdb.ExecContext(cctx, "PRAGMA wal_checkpoint(RESTART)"); err != nil {
		s.logger.Warn("checkpoint on a full disk", "err", err)
	}
}

// makeReserve writes the reserve file with real blocks (zeros written, not
// a sparse file) and syncs it, so that deleting it frees that much.
func (s *Store) makeReserve() (err error) {
	path := s.reservePath()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	chunk := make([]byte, 64<<10)
	for left := s.reserveSize; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), left)]); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// noteFull makes room at once when err says the disk is full, so that the
// caller's retry (the dispatcher's, recording what the provider accepted)
// finds some. Call it once the failed transaction has ended.
func (s *Store) noteFull(err error) {
	if err == nil || s.minFree <= 0 || !isDiskFull(err) {
		return
	}
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	s.makeRoom(context.Background(), "a write failed: disk full")
}

// noteFullp is noteFull for a deferred call on a named error result.
func (s *Store) noteFullp(err *error) { s.noteFull(*err) }

// isDiskFull reports whether err is SQLite's SQLITE_FULL or the kernel's
// ENOSPC.
func isDiskFull(err error) bool {
	var se *sqlite3.Error
	if errors.As(err, &se) && se.Code()&0xff == 13 { // SQLITE_FULL
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "disk is full")
}

// formatBytes writes n in MiB (KiB below one MiB).
func formatBytes(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
