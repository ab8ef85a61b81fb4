package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/outbox"
)

// intakeNote is a notification as the pipeline records one of the load
// tool's webhooks with the shipped config (dedup on): a distinct group per
// request, one message per receiver with its dedup key and alert
// references, and receivers numbers each. Receivers with the default
// template share one text.
func intakeNote(seq int64, receivers, numbers int) outbox.Notification {
	group := fmt.Sprintf(`{}/{severity="critical"}:{alertname="LGb%07d"}`, seq)
	n := outbox.Notification{Source: "alertmanager", GroupKey: group, Status: "firing",
		AlertName: fmt.Sprintf("LGb%07d", seq), DedupWindow: 5 * time.Minute}
	text := fmt.Sprintf("[FIRING:1] LGb%07d db-%d.example.net:9100 Filesystem / on db-%d is 97%% full", seq, seq, seq)
	for r := range receivers {
		m := outbox.Message{Receiver: fmt.Sprint("recv", r), Text: text, Segments: 1,
			Alerts: []outbox.AlertRef{{Fingerprint: fmt.Sprintf("%016x", seq), StartsAt: time.Unix(1_790_000_000, 0)}}}
		sum := sha256.Sum256([]byte(m.Receiver + group))
		m.DedupKey = hex.EncodeToString(sum[:])
		for k := range numbers {
			m.Numbers = append(m.Numbers, fmt.Sprintf("+2784%07d", 1000000+r*1000+k))
		}
		n.Messages = append(n.Messages, m)
	}
	return n
}

// cpuTime is the process's user and system time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnqueueIntake measures what the intake's write costs: durable
// enqueues per second from many concurrent callers, the process's CPU time
// per enqueue (the callers' share is negligible), and the database pages
// each group commit writes to the WAL. light is the load tool's max phase
// (one receiver, two numbers), heavy its heavy phase (three receivers of
// four numbers, one shared text).
func BenchmarkEnqueueIntake(b *testing.B) {
	for _, c := range []struct {
		name               string
		receivers, numbers int
	}{{"light", 1, 2}, {"heavy", 3, 4}} {
		b.Run(c.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			s := mustOpen(b, b.TempDir(), Options{Retention: week, Metrics: outbox.NewMetrics(reg)})
			ctx := context.Background()
			// Every frame stays in the WAL until the end, to be counted.
			if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
				b.Fatal(err)
			}
			if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Enqueue(ctx, intakeNote(seq.Add(1), c.receivers, c.numbers)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
			b.StopTimer()
			var busy, frames, done int
			if err := s.wdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil {
				b.Fatal(err)
			}
			h := metric(b, reg, "smsbridge_outbox_commit_batch_size").GetHistogram()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "enqueues/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/enqueue")
			if commits := h.GetSampleCount(); commits > 0 {
				b.ReportMetric(float64(frames)/float64(commits), "pages/commit")
				b.ReportMetric(float64(b.N)/float64(commits), "notifications/commit")
			}
		})
	}
}
