//go:build reliability && linux

package reliability

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestStoreUnwritable makes the outbox unwritable under the running bridge:
// every webhook must then get 503 (so Alertmanager retries), never 202, and
// once the store is writable again webhooks are accepted and delivered.
//
// The store is made unwritable with the immutable attribute (chattr +i) on
// the database, its WAL and its directory: the kernel then refuses writes
// even through file descriptors the bridge already holds open, and even
// for root. chmod would not do: it is checked only when a file is opened,
// and root ignores it. A read-only remount is refused while the bridge
// holds the files open for writing (EBUSY), and a full disk fails only the
// writes that grow a file, not those that reuse the WAL's space. chattr
// needs root (CAP_LINUX_IMMUTABLE) and a filesystem with the attribute
// (ext4, xfs, btrfs, tmpfs since Linux 6.0); the test fails, saying so,
// where it cannot set it.
func TestStoreUnwritable(t *testing.T) {
	nums := numbers(2)
	fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
	defer fake.Close()
	s := newSetup(t, config{ProviderURL: fake.URL, Numbers: nums})
	b := start(t, s.args()...)

	w := want{}
	b.mustAccept("Store0000")
	w.add("Store0000", nums)
	waitDelivered(t, fake, w, 30*time.Second, b)

	paths := []string{s.store}
	for _, name := range []string{"smsbridge.db", "smsbridge.db-wal"} {
		p := filepath.Join(s.store, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("store file: %v", err)
		}
		paths = append(paths, p)
	}
	setImmutable := func(on bool) error {
		flag := "-i"
		if on {
			flag = "+i"
		}
		out, err := exec.Command("chattr", append([]string{flag}, paths...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chattr %s: %v: %s", flag, err, out)
		}
		return nil
	}
	// Whatever happens, the temporary directory must be removable after.
	t.Cleanup(func() { _ = setImmutable(false) })
	if err := setImmutable(true); err != nil {
		t.Fatalf("cannot make the store unwritable: %v\n"+
			"this test needs root (CAP_LINUX_IMMUTABLE) and a filesystem with the immutable attribute for %s", err, s.store)
	}

	const refused = 20
	for i := range refused {
		name := fmt.Sprintf("Unstored%04d", i)
		r, err := b.post("/api/v1/alertmanager", amPayload(name), nil)
		if err != nil {
			t.Fatalf("post %s: %v", name, err)
		}
		if r.Status != http.StatusServiceUnavailable {
			t.Fatalf("post %s to an unwritable store: %d %s, want 503", name, r.Status, r.Raw)
		}
	}
	if n := b.metric(`smsbridge_notifications_received_total{outcome="store_error",source="alertmanager"}`); n != refused {
		t.Errorf("store_error outcomes %v, want %d", n, refused)
	}
	if !b.Running() {
		t.Fatalf("bridge exited with its store unwritable:\n%s", b.Logs())
	}
	for line := range strings.Lines(b.Logs()) {
		if strings.Contains(line, "level=ERROR") {
			t.Logf("the bridge says: %s", strings.TrimSpace(line))
			break
		}
	}

	if err := setImmutable(false); err != nil {
		t.Fatal(err)
	}
	recovers(t, b, fake, w, nums)
}

// TestStoreDiskFull puts the store on a 4 MiB tmpfs and fills it to the
// last byte under the running bridge: webhooks get 503, never 202, and once
// space is freed they are accepted and delivered again. The store is a
// WAL database that is never checkpointed in so short a run, so every
// commit appends whole frames to the WAL and needs new space. Mounting
// needs root (CAP_SYS_ADMIN); the test fails, saying so, where it cannot
// mount.
func TestStoreDiskFull(t *testing.T) {
	nums := numbers(2)
	fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
	defer fake.Close()
	// The default storage.min_free (64 MiB) is more than the whole disk.
	s := newSetup(t, config{ProviderURL: fake.URL, Numbers: nums, Extra: "storage: {min_free: 1MiB}\n"})
	b := s.startOnTmpfs(t, "4m")

	w := want{}
	b.mustAccept("Full0000")
	w.add("Full0000", nums)
	waitDelivered(t, fake, w, 30*time.Second, b)

	filler := fill(t, s.store)
	// A write that still fits (SQLite reuses WAL frames after a
	// checkpoint) is stored and answered 202, rightly; the health check
	// notices the full disk within a second, and from then on every
	// webhook gets 503.
	binarytest.Eventually(t, 5*time.Second, "unready on a full disk", func() (bool, string) {
		r, err := http.Get(b.URL("/-/ready"))
		if err != nil {
			return false, err.Error()
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable, r.Status
	})

	for i := range 20 {
		name := fmt.Sprintf("Unstored%04d", i)
		r, err := b.post("/api/v1/alertmanager", amPayload(name), nil)
		if err != nil {
			t.Fatalf("post %s: %v", name, err)
		}
		if r.Status != http.StatusServiceUnavailable {
			t.Fatalf("post %s to a full disk: %d %s, want 503", name, r.Status, r.Raw)
		}
	}
	for line := range strings.Lines(b.Logs()) {
		if strings.Contains(line, "level=ERROR") {
			t.Logf("the bridge says: %s", strings.TrimSpace(line))
			break
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	recovers(t, b, fake, w, nums)
}

// startOnTmpfs mounts a tmpfs of size on the store's directory and starts
// the bridge on it; the cleanup unmounts it after the bridge is gone.
// Mounting needs root (CAP_SYS_ADMIN); the test fails, saying so, where it
// cannot mount.
func (s *setup) startOnTmpfs(t *testing.T, size string) *bridge {
	t.Helper()
	if err := os.MkdirAll(s.store, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0750", "tmpfs", s.store).CombinedOutput(); err != nil {
		t.Fatalf("cannot mount a small filesystem for the store: %v: %s\n"+
			"this test needs root (CAP_SYS_ADMIN) to mount a tmpfs", err, out)
	}
	b := start(t, s.args()...)
	// Unmount after the bridge is gone (cleanups run last-in first-out).
	t.Cleanup(func() {
		if b.Running() {
			b.Kill()
		}
		if out, err := exec.Command("umount", s.store).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", s.store, err, out)
		}
	})
	return b
}

// fill takes every free byte of dir's filesystem with one file, in one
// fallocate call, and returns its path. One call, not a loop of writes:
// space the bridge gives back while a loop still writes would be eaten by
// the loop, as by a process that never stops writing, which no reserve
// can outlast.
func fill(t *testing.T, dir string) string {
	t.Helper()
	var st syscall.Statfs_t
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The bridge keeps writing (its WAL grows) between statfs and
	// fallocate, so the size read may be gone by the time it is asked
	// for: a failed fallocate allocates nothing, so read the free space
	// again and ask again.
	for try := 1; ; try++ {
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(st.Bavail)*st.Bsize)
		if err == nil {
			break
		}
		if err != syscall.ENOSPC || try == 50 {
			t.Fatalf("fill %s (try %d): %v", dir, try, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s: %d bytes free", dir, int64(st.Bavail)*st.Bsize)
	return filler
}

// TestStoreDiskFullDrains is the disk-full finding: with work
// queued behind a failing provider, the disk fills to the last byte. The
// bridge turns unready and refuses new notifications (503, never 202), gives
// its reserve back, and once the provider recovers sends everything it had
// accepted while the disk is still full (before, leasing failed with
// "database or disk is full" and the queue stayed stuck). Once space
// returns it is ready again, takes its reserve back and accepts and
// delivers new notifications, without a restart.
func TestStoreDiskFullDrains(t *testing.T) {
	nums := numbers(3)
	fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited})
	defer fake.Close()
	s := newSetup(t, config{ProviderURL: fake.URL, Numbers: nums, Extra: "storage: {min_free: 2MiB}\n"})
	b := s.startOnTmpfs(t, "8m")
	reserve := filepath.Join(s.store, "reserve")
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("reserve file at start: %v %v, want 1 MiB (half of min_free)", fi, err)
	}

	// The provider is down: everything accepted waits in the queue.
	fake.FailRate(1, smsfake.Fault{Status: http.StatusServiceUnavailable})
	w := want{}
	for i := range 20 {
		name := fmt.Sprintf("Queued%04d", i)
		b.mustAccept(name)
		w.add(name, nums)
	}
	binarytest.Eventually(t, 10*time.Second, "the provider refused a few", func() (bool, string) {
		return fake.Requests() > 3, fmt.Sprint(fake.Requests())
	})

	filler := fill(t, s.store)
	took := time.Now()
	binarytest.Eventually(t, 5*time.Second, "unready on a full disk", func() (bool, string) {
		r, err := http.Get(b.URL("/-/ready"))
		if err != nil {
			return false, err.Error()
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable, r.Status
	})
	t.Logf("unready %s after the disk filled", time.Since(took).Round(time.Millisecond))
	for i := range 5 {
		r, err := b.post("/api/v1/alertmanager", amPayload(fmt.Sprintf("Unstored%04d", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusServiceUnavailable {
			t.Fatalf("post to a full disk: %d %s, want 503", r.Status, r.Raw)
		}
	}
	if _, err := os.Stat(reserve); !os.IsNotExist(err) {
		t.Errorf("the reserve file is still there on a full disk: %v", err)
	}

	// The provider is back; the disk is still full.
	fake.ClearFaults()
	waitDelivered(t, fake, w, 30*time.Second, b)
	if r, _ := http.Get(b.URL("/-/ready")); r != nil {
		r.Body.Close()
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("ready answered %d with the disk still full", r.StatusCode)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	binarytest.Eventually(t, 10*time.Second, "ready once space returned", func() (bool, string) {
		r, err := http.Get(b.URL("/-/ready"))
		if err != nil {
			return false, err.Error()
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK, r.Status
	})
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 1<<20 {
		t.Errorf("reserve file after space returned: %v %v", fi, err)
	}
	for _, msg := range []string{"released the reserve file", "reserve restored and WAL checkpointed", "not ready: new notifications are answered 503", "ready again"} {
		if !strings.Contains(b.Logs(), msg) {
			t.Errorf("the log lacks %q", msg)
		}
	}
	recovers(t, b, fake, w, nums)
}

// recovers checks a bridge whose store is writable again: the next
// webhooks are stored (503 is still the honest answer while it recovers)
// and delivered with everything accepted before, and nothing it answered
// 503 for is ever delivered.
func recovers(t *testing.T, b *bridge, fake *smsfake.Server, w want, nums []string) {
	t.Helper()
	for i := range 10 {
		name := fmt.Sprintf("Again%04d", i)
		var r reply
		binarytest.Eventually(t, 10*time.Second, "store writable again", func() (bool, string) {
			var err error
			r, err = b.post("/api/v1/alertmanager", amPayload(name), nil)
			if err != nil {
				return false, err.Error()
			}
			return r.Status != http.StatusServiceUnavailable, fmt.Sprintf("%d %s", r.Status, r.Raw)
		})
		if r.Status != http.StatusAccepted {
			t.Fatalf("post %s after recovery: %d %s", name, r.Status, r.Raw)
		}
		w.add(name, nums)
	}
	waitDelivered(t, fake, w, 30*time.Second, b)
	for k := range deliveries(fake) {
		if strings.HasPrefix(k, "Unstored") {
			t.Errorf("%s was delivered although the bridge answered 503 for it", k)
		}
	}
	b.checkLog()
}
