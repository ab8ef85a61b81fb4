//go:build postgres

package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/internal/pgtest"
	"github.com/smsbridge/smsbridge/outbox"
)

// BenchmarkEnqueue measures intake on one store from concurrent callers:
// notifications with no guard, with a group key, with a duplicate key,
// with alerts for the stale check, and with all three, as the
// Alertmanager intake writes them. On one machine shared with the
// database, the WAL flush dominates and varies with the machine's load:
// compare variants run back to back.
//
//	go test -tags postgres -run '^$' -bench Enqueue ./outbox/postgres/
func BenchmarkEnqueue(b *testing.B) {
	for _, tc := range []struct {
		name                 string
		group, dedup, alerts bool
	}{{"plain", false, false, false}, {"group", true, false, false}, {"dedup", true, true, false}, {"alerts", true, false, true}, {"alertmanager", true, true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := Open(context.Background(), pgtest.DSN(b), Options{Schema: pgtest.Schema(b), Retention: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var seq atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := fmt.Sprintf("Load%07d", seq.Add(1))
					m := outbox.Message{Receiver: "ops", Text: "FIRING " + name, Segments: 1, Numbers: []string{"+27831000000", "+27831000001"}}
					n := outbox.Notification{Source: "alertmanager", Status: "firing", Messages: []outbox.Message{m}}
					if tc.group {
						n.GroupKey = `{}:{alertname="` + name + `"}`
					}
					if tc.dedup {
						n.DedupWindow = 5 * time.Minute
						n.Messages[0].DedupKey = "key-" + name
					}
					if tc.alerts {
						n.Messages[0].Alerts = []outbox.AlertRef{{Fingerprint: "f" + name, StartsAt: time.Unix(1700000000, 0)}}
					}
					if _, err := s.Enqueue(context.Background(), n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
