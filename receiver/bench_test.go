package receiver

import (
	"os"
	"testing"
	"time"
)

// BenchmarkDecodeAlertmanager is the intake's decode of one Alertmanager
// webhook (testdata/am-firing.json) into a notification, validation
// included.
func BenchmarkDecodeAlertmanager(b *testing.B) {
	body, err := os.ReadFile("testdata/am-firing.json")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 3, 4, 5, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeAlertmanager(body, now); err != nil {
			b.Fatal(err)
		}
	}
}
