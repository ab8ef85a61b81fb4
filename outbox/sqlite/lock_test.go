package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// lockHelperEnv, when set, makes the test binary a helper process that
// holds a store open in the directory it names (see TestMain).
const lockHelperEnv = "SMSBRIDGE_TEST_LOCK_HELPER_DIR"

// refuseWithin is how fast a second Open must fail: at once, not after a
// timeout.
const refuseWithin = time.Second

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		os.Exit(lockHelper(dir))
	}
	os.Exit(m.Run())
}

// lockHelper opens a store in dir as owner "helper", leases the work it
// enqueues, says "ready" on stdout, and holds everything until stdin
// closes or the process is killed.
func lockHelper(dir string) int {
	s, err := Open(dir, Options{Retention: week, Owner: "helper"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, note("held by the helper")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := s.Lease(ctx, time.Now(), 10, 10, time.Hour); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// wantInUse checks that err is the refusal for dir held by pid, and that
// it came within refuseWithin of start.
func wantInUse(t *testing.T, err error, dir string, pid int, start time.Time) {
	t.Helper()
	if took := time.Since(start); took > refuseWithin {
		t.Errorf("the second Open took %v to fail, want under %v", took, refuseWithin)
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("err = %v, want ErrInUse", err)
	}
	want := fmt.Sprintf("storage directory %s is in use by another smsbridge (pid %d); two processes must not share one outbox", dir, pid)
	if err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
}

// TestLockInProcess: a second Open of a directory in use fails at once,
// however it is reached, and the lock goes with Close.
func TestLockInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := mustOpen(t, dir, Options{Retention: week})
	if b, err := os.ReadFile(filepath.Join(dir, LockFileName)); err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q (%v), want this pid", b, err)
	}
	start := time.Now()
	b, err := Open(dir, Options{Retention: week})
	if err == nil {
		b.Close()
		t.Fatal("a second store opened the same directory")
	}
	wantInUse(t, err, dir, os.Getpid(), start)
	// The same directory by another path is the same lock.
	other := filepath.Join(dir, "..", filepath.Base(dir))
	start = time.Now()
	if _, err := Open(other, Options{Retention: week}); err == nil {
		t.Fatal("a second store opened the same directory by another path")
	} else {
		wantInUse(t, err, other, os.Getpid(), start)
	}
	// The refusals did not disturb the holder.
	enqueue(t, a, note("still mine"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, dir, Options{Retention: week})
	if st, err := c.Stats(context.Background()); err != nil || st.Pending != 2 {
		t.Errorf("after the holder closed: %+v %v", st, err)
	}
}

// TestLockAcrossProcesses runs a second process that holds the directory:
// this one is refused at once with the helper's pid, and once the helper
// is killed (no Close, as a crash) the kernel frees the lock and Open
// takes over the helper's leases.
func TestLockAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("helper said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the helper did not get ready in 30s")
	}

	start := time.Now()
	s, err := Open(dir, Options{Retention: week})
	if err == nil {
		s.Close()
		t.Fatal("opened a directory another process holds")
	}
	wantInUse(t, err, dir, cmd.Process.Pid, start)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed" is the expected answer
	waited = true

	var logs syncBuffer
	s = mustOpen(t, dir, Options{Retention: week, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "owners=helper") {
		t.Errorf("the helper's leases were not recovered at open: %s", logs.String())
	}
	bs := lease(t, s, time.Now(), 10, 10)
	if len(bs) != 1 || bs[0].Text != "held by the helper" || len(bs[0].Deliveries) != 2 {
		t.Fatalf("after the helper died leased %+v, want its two rows", bs)
	}
	for _, r := range records(t, s, outbox.Filter{State: outbox.StateSending}) {
		if r.LeaseOwner != s.Owner() {
			t.Errorf("row %d leased by %q, want this store", r.ID, r.LeaseOwner)
		}
	}
}
