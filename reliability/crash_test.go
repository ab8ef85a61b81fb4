//go:build reliability && linux

package reliability

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/binarytest"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestCrashLoop kills the bridge with SIGKILL at random moments while
// webhooks arrive and deliveries are in flight, ten times, restarting it on
// the same store each time. At the end every number of every notification
// answered 202 was delivered; repeats are counted per kill and must stay
// within the batches that can be in flight at a kill.
func TestCrashLoop(t *testing.T) {
	const (
		kills   = 10
		workers = 2
		senders = 4
	)
	nums := numbers(3)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (kill moments)", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	// A provider this slow keeps requests in flight at every kill.
	fake := smsfake.NewServer(smsfake.Options{APIKey: apiKey, Credits: smsfake.Unlimited, Latency: 30 * time.Millisecond})
	defer fake.Close()
	s := newSetup(t, config{ProviderURL: fake.URL, Workers: workers, Numbers: nums})

	w := want{}
	var seq atomic.Int64
	// restartAt[k] is how many messages the fake had accepted when the
	// bridge restarted after kill k+1.
	var restartAt []int
	for round := range kills + 1 {
		if round > 0 {
			restartAt = append(restartAt, len(fake.Messages()))
		}
		b := start(t, s.args()...)
		if round == kills {
			waitDelivered(t, fake, w, 2*time.Minute, b)
			perKill, unexplained := repeatsPerKill(fake.Messages(), restartAt)
			total := unexplained
			for k, d := range perKill {
				t.Logf("kill %d: %d deliveries repeated after the restart", k+1, d)
				total += d
				if d > workers*len(nums) {
					t.Errorf("kill %d: %d repeats; at-least-once allows at most the %d numbers of the requests in flight", k+1, d, workers*len(nums))
				}
			}
			t.Logf("all %d accepted numbers delivered after %d kills; %d repeats in all (%.1f per kill)", len(w), kills, total, float64(total)/kills)
			if unexplained > 0 {
				t.Errorf("%d deliveries repeated before any kill", unexplained)
			}
			b.checkLog()
			return
		}

		// Load: senders post back to back until the kill.
		var (
			mu       sync.Mutex
			accepted []string
			stop     = make(chan struct{})
			wg       sync.WaitGroup
		)
		for range senders {
			wg.Go(func() {
				// Paced, so the backlog (and the time to deliver it at the
				// end) does not grow with the machine's speed: 4 senders
				// post 160 webhooks a second, above the ~66 requests a
				// second 2 workers get through a 30 ms provider.
				tick := time.NewTicker(25 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					name := fmt.Sprintf("Crash%04d", seq.Add(1))
					r, err := b.post("/api/v1/alertmanager", amPayload(name), nil)
					if err != nil {
						// Cut off by the kill: not accepted, so not owed.
						return
					}
					if r.Status == http.StatusAccepted {
						mu.Lock()
						accepted = append(accepted, name)
						mu.Unlock()
					}
				}
			})
		}
		// Wait until this round's webhooks are being accepted and
		// deliveries are under way, then a random moment more.
		base := fake.Accepted()
		binarytest.Eventually(t, 30*time.Second, "webhooks accepted and deliveries under way", func() (bool, string) {
			mu.Lock()
			n := len(accepted)
			mu.Unlock()
			return n > 0 && fake.Accepted() > base, fmt.Sprintf("%d webhooks accepted this round, %d messages at the provider", n, fake.Accepted())
		})
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		b.Kill()
		close(stop)
		wg.Wait()
		b.checkLog()
		mu.Lock()
		for _, name := range accepted {
			w.add(name, nums)
		}
		n := len(accepted)
		mu.Unlock()
		if n == 0 {
			t.Fatalf("round %d: nothing accepted before the kill", round)
		}
		t.Logf("round %d: %d notifications accepted, %d numbers delivered so far, killed", round, n, fake.Accepted())
	}
}

// repeatsPerKill attributes each repeated delivery (a name and number
// accepted before) to the last restart before it; repeats before the first
// restart are unexplained.
func repeatsPerKill(msgs []smsfake.Message, restartAt []int) (perKill []int, unexplained int) {
	perKill = make([]int, len(restartAt))
	seen := map[string]bool{}
	for i, m := range msgs {
		name := binarytest.NameRE.FindString(m.Text)
		if name == "" {
			continue
		}
		k := name + "|" + m.Number
		if !seen[k] {
			seen[k] = true
			continue
		}
		kill := -1
		for j, at := range restartAt {
			if i >= at {
				kill = j
			}
		}
		if kill < 0 {
			unexplained++
		} else {
			perKill[kill]++
		}
	}
	return perKill, unexplained
}
