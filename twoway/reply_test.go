package twoway

import (
	"testing"
	"time"
)

func TestParseReply(t *testing.T) {
	t.Parallel()
	ack := func(code int, d time.Duration) Command { return Command{Kind: Ack, Code: code, Duration: d} }
	tests := []struct {
		text string
		want Command
	}{
		{"ACK 12", ack(12, 0)},
		{"ack 12", ack(12, 0)},
		{"  'ACK 12'  ", ack(12, 0)},
		{`"ack  12".`, ack(12, 0)},
		{"Ack-12!", ack(12, 0)},
		{"ack12", ack(12, 0)},
		{"ACK12", ack(12, 0)},
		{"12a", ack(12, 0)},
		{"12A", ack(12, 0)},
		{"12 a", ack(12, 0)},
		{"‘12a’", ack(12, 0)},
		{"ack 12a", ack(12, 0)},
		{"ACK 7 4h", ack(7, 4*time.Hour)},
		{"ACK 7, 90m", ack(7, 90*time.Minute)},
		{"ack 7 1h30m", ack(7, 90*time.Minute)},
		{"ACK 7 4hrs", ack(7, 4*time.Hour)},
		{"ACK 7 2 hours", ack(7, 2*time.Hour)},
		{"ack 7 1 day", ack(7, 24*time.Hour)},
		{"ack 7 30 mins", ack(7, 30*time.Minute)},
		{"12a 4h", ack(12, 4*time.Hour)},
		{"ack12 4h", ack(12, 4*time.Hour)},
		{"ACK 7 forever", ack(7, 0)},
		{"ACK 7 thanks!", ack(7, 0)},
		{"ACK 7 0h", ack(7, 0)},
		{"ACK 1234567", ack(-1, 0)},
		{"ACK ALL", Command{Kind: AckAll}},
		{"ack all 2h", Command{Kind: AckAll, Duration: 2 * time.Hour}},
		{"ackall", Command{Kind: AckAll}},
		{"STOP", Command{Kind: Stop}},
		{"stop.", Command{Kind: Stop}},
		{"Stop all", Command{Kind: Stop}},
		{"StopAll", Command{Kind: Stop}},
		{"UNSUBSCRIBE", Command{Kind: Stop}},
		{"cancel", Command{Kind: Stop}},
		{"End", Command{Kind: Stop}},
		{"quit", Command{Kind: Stop}},
		{"START", Command{Kind: Start}},
		{"unstop", Command{Kind: Start}},
		// Not commands: a STOP word inside a sentence, and anything else.
		{"please stop this", Command{Kind: Junk}},
		{"start again", Command{Kind: Junk}},
		{"ACK", Command{Kind: Junk}},
		{"ok", Command{Kind: Junk}},
		{"12", Command{Kind: Junk}},
		{"a12", Command{Kind: Junk}},
		{"ack twelve", Command{Kind: Junk}},
		{"", Command{Kind: Junk}},
		{"👍", Command{Kind: Junk}},
	}
	for _, tc := range tests {
		if got := ParseReply(tc.text); got != tc.want {
			t.Errorf("ParseReply(%q) = %+v, want %+v", tc.text, got, tc.want)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"ACK 12", "12a 4h", "ack all", "STOP", "ack 1 2 hours", "ack\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseReply(s)
		if c.Duration < 0 || (c.Kind != Ack && c.Code != 0) || c.Code < -1 {
			t.Errorf("ParseReply(%q) = %+v", s, c)
		}
	})
}
