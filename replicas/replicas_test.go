//go:build replicas && linux

package replicas

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
)

// post posts names spread over bs (name i to bs[i%len(bs)]) from a few
// goroutines and returns the names answered 202; any other answer fails
// the test.
func post(t *testing.T, names []string, bs ...*bridge) []string {
	t.Helper()
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b := bs[i%len(bs)]
				st, err := b.post(names[i])
				if err != nil || st != http.StatusAccepted {
					t.Errorf("%s to %s: %d %v", names[i], b.name, st, err)
					continue
				}
				mu.Lock()
				accepted = append(accepted, names[i])
				mu.Unlock()
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	return accepted
}

func alertNames(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, from+i)
	}
	return out
}

// TestReplicasShareTheRateLimit: three replicas take 300 notifications
// between them; the one that dispatches keeps the provider's limit of 10
// requests a second, none lands in a 429 pause, and every (text, number)
// pair arrives.
func TestReplicasShareTheRateLimit(t *testing.T) {
	p := newProvider(t)
	nums := numbers(3)
	c := newCluster(t, p, nums)
	bs := []*bridge{c.start("r1"), c.start("r2"), c.start("r3")}
	leader(t, 15*time.Second, bs...)

	names := alertNames("Spread", 0, 300)
	start := time.Now()
	if got := post(t, names, bs...); len(got) != len(names) {
		t.Fatalf("%d of %d notifications accepted", len(got), len(names))
	}
	t.Logf("300 notifications accepted by 3 replicas in %v", time.Since(start).Round(time.Millisecond))
	got := waitDelivered(t, p, names, nums, 90*time.Second)
	took := time.Since(start)
	checkPace(t, p)
	if d := binarytest.Duplicates(got); d != 0 {
		t.Errorf("%d duplicate deliveries without a failure", d)
	}
	reqs := len(p.requests())
	t.Logf("%d requests in %v (%.2f/s); busiest second: %d", reqs, took.Round(time.Millisecond), float64(reqs)/took.Seconds(), first(busiestSecond(p.requests())))
	if l := leader(t, time.Second, bs...); l == nil {
		t.Error("no leader at the end")
	}
}

func first(n int, _ time.Time) int { return n }

// TestLeaderKilled: kill -9 the dispatching replica mid-run. Another takes
// over within 15 s, nothing accepted is lost, and the duplicates are at
// most the batches that were in flight.
func TestLeaderKilled(t *testing.T) {
	p := newProvider(t)
	nums := numbers(3)
	c := newCluster(t, p, nums)
	bs := []*bridge{c.start("r1"), c.start("r2"), c.start("r3")}
	old := leader(t, 15*time.Second, bs...)

	names := alertNames("Kill", 0, 120)
	accepted := post(t, names, bs...)
	binarytest.Eventually(t, 30*time.Second, "some sent", func() (bool, string) {
		n := len(p.Messages())
		return n >= 30*len(nums), fmt.Sprint(n, " messages")
	})
	killed := time.Now()
	old.Kill()
	var rest []*bridge
	for _, b := range bs {
		if b != old {
			rest = append(rest, b)
		}
	}
	// Intake goes on at the survivors meanwhile.
	accepted = append(accepted, post(t, alertNames("Kill", 1000, 30), rest...)...)
	binarytest.Eventually(t, 15*time.Second, "a request by the new leader", func() (bool, string) {
		for _, r := range p.requests() {
			if r.After(killed) {
				return true, ""
			}
		}
		return false, "no request since the kill"
	})
	takeover := time.Since(killed)
	for _, r := range p.requests() {
		if r.After(killed) && r.Sub(killed) < takeover {
			takeover = r.Sub(killed)
		}
	}
	t.Logf("first request after the kill: %v later", takeover.Round(time.Millisecond))
	if takeover > 15*time.Second {
		t.Errorf("takeover took %v, want at most 15s", takeover)
	}
	nl := leader(t, 15*time.Second, rest...)
	got := waitDelivered(t, p, accepted, nums, 60*time.Second)
	checkPace(t, p)
	// delivery.workers is 4: at most 4 batches of 3 numbers were on the
	// wire when the leader died.
	if d := binarytest.Duplicates(got); d > 4*len(nums) {
		t.Errorf("%d duplicate deliveries, want at most the %d of 4 batches in flight", d, 4*len(nums))
	} else {
		t.Logf("%d duplicate deliveries after the kill (at most %d allowed)", d, 4*len(nums))
	}
	if v, _ := nl.metric("smsbridge_leader_changes_total"); v != 1 {
		t.Errorf("the new leader counts %v leader changes, want 1", v)
	}
}

// pgctl runs pg_ctl on the test server's cluster as its owner.
func pgctl(t *testing.T, args ...string) {
	t.Helper()
	dir, bin := os.Getenv("SMSBRIDGE_TEST_PG_DIR"), os.Getenv("SMSBRIDGE_TEST_PG_BIN")
	if dir == "" || bin == "" {
		t.Fatal("SMSBRIDGE_TEST_PG_DIR and SMSBRIDGE_TEST_PG_BIN are not set: the restart test needs the cluster .ci/pg-cluster.sh started")
	}
	argv := append([]string{bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/server.log", "-w", "-t", "60"}, args...)
	var cmd *exec.Cmd
	if os.Getuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--"}, argv...)...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

// TestDatabaseRestarted: restart the database mid-run. While it is down
// intake answers 503 and readiness fails, so Alertmanager retries; once it
// is back, everything that was answered 202 is delivered.
func TestDatabaseRestarted(t *testing.T) {
	p := newProvider(t)
	nums := numbers(2)
	c := newCluster(t, p, nums)
	bs := []*bridge{c.start("r1"), c.start("r2"), c.start("r3")}
	leader(t, 15*time.Second, bs...)
	accepted := post(t, alertNames("Restart", 0, 60), bs...)
	binarytest.Eventually(t, 30*time.Second, "some sent", func() (bool, string) {
		n := len(p.Messages())
		return n >= 10*len(nums), fmt.Sprint(n, " messages")
	})

	pgctl(t, "-m", "fast", "stop")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			pgctl(t, "start")
		}
	})
	down := time.Now()
	for i, b := range bs {
		st, err := b.post(fmt.Sprintf("Down%04d", i))
		if err != nil || st != http.StatusServiceUnavailable {
			t.Errorf("intake at %s while the database is down: %d %v, want 503", b.name, st, err)
		}
		binarytest.Eventually(t, 5*time.Second, b.name+" not ready", func() (bool, string) {
			st, err := b.get("/-/ready")
			return err == nil && st == http.StatusServiceUnavailable, fmt.Sprint(st, err)
		})
	}
	time.Sleep(2*time.Second - time.Since(down))
	pgctl(t, "start")
	restarted = true
	t.Logf("database down for %v", time.Since(down).Round(time.Millisecond))

	for _, b := range bs {
		binarytest.Eventually(t, 15*time.Second, b.name+" ready again", func() (bool, string) {
			st, err := b.get("/-/ready")
			return err == nil && st == http.StatusOK, fmt.Sprint(st, err)
		})
	}
	accepted = append(accepted, post(t, alertNames("Restart", 1000, 30), bs...)...)
	got := waitDelivered(t, p, accepted, nums, 60*time.Second)
	checkPace(t, p)
	t.Logf("%d duplicate deliveries across the restart", binarytest.Duplicates(got))
	leader(t, 15*time.Second, bs...)
}

// TestHAPairAcrossReplicas: an Alertmanager HA pair delivers each
// notification once per peer, and behind one Service the two copies often
// reach two replicas at the same moment. Each copy is answered 202, and
// each text reaches each number once: the duplicate check and the key's
// write are one step for every replica.
func TestHAPairAcrossReplicas(t *testing.T) {
	p := newProvider(t)
	nums := numbers(2)
	c := newCluster(t, p, nums)
	bs := []*bridge{c.start("r1"), c.start("r2"), c.start("r3")}
	leader(t, 15*time.Second, bs...)

	names := alertNames("Pair", 0, 30)
	var wg sync.WaitGroup
	for i, name := range names {
		for peer := range 2 {
			b := bs[(i+peer)%len(bs)]
			wg.Go(func() {
				if st, err := b.post(name); err != nil || st != http.StatusAccepted {
					t.Errorf("%s to %s: %d %v", name, b.name, st, err)
				}
			})
		}
	}
	wg.Wait()
	waitDelivered(t, p, names, nums, 30*time.Second)
	binarytest.Eventually(t, 10*time.Second, "the queue empty", func() (bool, string) {
		v, ok := bs[0].metric("smsbridge_outbox_pending")
		return ok && v == 0, fmt.Sprint("pending ", v)
	})
	got := delivered(p)
	if d := binarytest.Duplicates(got); d != 0 {
		t.Errorf("%d duplicate deliveries of %d notifications posted twice each to two replicas", d, len(names))
	}
	var suppressed float64
	for _, b := range bs {
		v, _ := b.metric(`smsbridge_notifications_received_total{outcome="duplicate",source="alertmanager"}`)
		suppressed += v
	}
	if int(suppressed) != len(names) {
		t.Errorf("%v copies recorded as duplicates, want one of each pair (%d)", suppressed, len(names))
	}
	t.Logf("%d notifications posted by both peers to two replicas at once: each sent once, %v copies recorded as duplicates", len(names), suppressed)
	checkPace(t, p)
}
