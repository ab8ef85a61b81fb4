package sqlite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFileName is the name of the lock file inside the storage directory.
const LockFileName = "lock"

// ErrInUse is wrapped by the error Open returns when another store, in
// this process or another, holds the storage directory.
var ErrInUse = errors.New("storage directory in use")

// inUseError names the directory and the pid that holds it.
type inUseError struct {
	dir, pid string
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("storage directory %s is in use by another smsbridge (pid %s); two processes must not share one outbox", e.dir, e.pid)
}

func (e *inUseError) Is(target error) bool { return target == ErrInUse }

// dirLock is an exclusive flock on <dir>/lock, held while the store is
// open. The kernel drops it when the holder exits, however it exits, so a
// lock that is free proves every earlier holder is gone: that is what lets
// Open recover their leases at once.
type dirLock struct {
	f *os.File
}

// lockDir takes dir's lock without waiting for its holder and writes this
// process's pid into the lock file, for the error a second opener reports.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open outbox: lock %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &inUseError{dir: dir, pid: holder(f)}
		}
		return nil, fmt.Errorf("open outbox: lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("open outbox: lock %s: %w", path, err)
	}
	if _, err := f.WriteAt(pid, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("open outbox: lock %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

// lockGrace is how long a taken lock is retried before Open reports the
// directory in use. Another smsbridge holds its lock for as long as it
// runs, so the grace only delays that answer a little; what it rides out
// is a lock that outlives its Close for an instant: a child forked by this
// process shares every open file until its exec closes them, so a store
// closed (or an Open refused) while another goroutine starts a process
// leaves the lock held by that child for that instant.
const lockGrace = 250 * time.Millisecond

// tryLock takes f's exclusive lock without blocking in the kernel,
// retrying for lockGrace while it is taken; the error wraps
// syscall.EWOULDBLOCK when it stays taken.
func tryLock(f *os.File) error {
	deadline := time.Now().Add(lockGrace)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK) && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return err
	}
}

// holder reads the pid the lock's holder wrote, or "unknown" when there is
// none yet (the holder has locked the file and not yet written it).
func holder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return "unknown"
	}
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		return "unknown"
	}
	return pid
}

// release gives the lock up. The file stays: removing it would let a
// later opener lock a new file while a slower one still locks the old.
func (l *dirLock) release() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("release storage lock: %w", err)
	}
	return nil
}
