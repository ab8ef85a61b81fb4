package twoway

import (
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/common/model"
)

// Kind is what a reply asks for.
type Kind int

// Reply kinds.
const (
	// Junk is anything else: answered with a short help text.
	Junk Kind = iota
	// Ack acknowledges the group of one code.
	Ack
	// AckAll acknowledges every open group sent to the number in the
	// last day.
	AckAll
	// Stop opts the number out of every SMS.
	Stop
	// Start opts it back in.
	Start
)

// Command is a reply, read.
type Command struct {
	Kind Kind
	// Code is the code of an Ack; -1 for one too long to be any.
	Code int
	// Duration is the silence asked for ("ACK 12 4h"); zero for the
	// default.
	Duration time.Duration
}

// The STOP and START words carriers and providers honour, as whole
// replies.
var (
	stopWords  = map[string]bool{"stop": true, "stopall": true, "unsubscribe": true, "cancel": true, "end": true, "quit": true}
	startWords = map[string]bool{"start": true, "unstop": true}
)

// ParseReply reads a reply's text. Accepted, in any case, with quotes,
// punctuation and spaces around or between the parts:
//
//	ACK 12, ack12, 12a, 12 a     acknowledge code 12
//	ACK 12 4h, 12a 90m, ack 12 2 hours
//	                             ... for that long (default: replies.ack_silence)
//	ACK ALL, ackall, ACK ALL 2h  every open group of the last day
//	STOP, stopall, unsubscribe, cancel, end, quit
//	START, unstop
//
// A duration that cannot be read is ignored (the default applies): at
// 3 a.m. the acknowledgement matters more than its length. Anything else
// is Junk.
func ParseReply(text string) Command {
	f := fields(text)
	if len(f) == 0 {
		return Command{Kind: Junk}
	}
	if len(f) == 1 || (len(f) == 2 && f[0] == "stop" && f[1] == "all") {
		switch {
		case stopWords[f[0]]:
			return Command{Kind: Stop}
		case startWords[f[0]] && len(f) == 1:
			return Command{Kind: Start}
		}
	}
	var rest []string
	cmd := Command{Kind: Junk}
	switch first := f[0]; {
	case first == "ackall":
		cmd, rest = Command{Kind: AckAll}, f[1:]
	case first == "ack" && len(f) > 1 && f[1] == "all":
		cmd, rest = Command{Kind: AckAll}, f[2:]
	case first == "ack" && len(f) > 1 && isDigits(f[1]):
		cmd, rest = Command{Kind: Ack, Code: code(f[1])}, f[2:]
	case first == "ack" && len(f) > 1 && isDigits(strings.TrimSuffix(f[1], "a")) && strings.HasSuffix(f[1], "a"):
		cmd, rest = Command{Kind: Ack, Code: code(strings.TrimSuffix(f[1], "a"))}, f[2:]
	case strings.HasPrefix(first, "ack") && isDigits(first[3:]):
		cmd, rest = Command{Kind: Ack, Code: code(first[3:])}, f[1:]
	case strings.HasSuffix(first, "a") && isDigits(first[:len(first)-1]):
		cmd, rest = Command{Kind: Ack, Code: code(first[:len(first)-1])}, f[1:]
	case isDigits(first) && len(f) > 1 && f[1] == "a":
		cmd, rest = Command{Kind: Ack, Code: code(first)}, f[2:]
	default:
		return cmd
	}
	cmd.Duration = duration(rest)
	return cmd
}

// fields lower-cases text and splits it into runs of letters and digits:
// quotes, punctuation and spaces only separate.
func fields(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// code reads the digits of a code; -1 for more digits than any code has.
func code(s string) int {
	if len(s) > 6 {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// units are the duration words people write after a number.
var units = map[string]string{
	"m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
	"h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
	"d": "d", "day": "d", "days": "d",
}

// duration reads "4h", "90m", "1h30m", "4hrs", "2 hours" from the start
// of f; zero when there is none or it cannot be read.
func duration(f []string) time.Duration {
	if len(f) == 0 {
		return 0
	}
	s := f[0]
	if isDigits(s) && len(f) > 1 {
		s += f[1]
	}
	if d, err := model.ParseDuration(s); err == nil && d > 0 {
		return time.Duration(d)
	}
	// "4hrs", "30mins", "2hours": digits and a unit word.
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0
	}
	u, ok := units[s[i:]]
	if !ok {
		return 0
	}
	if d, err := model.ParseDuration(s[:i] + u); err == nil && d > 0 {
		return time.Duration(d)
	}
	return 0
}
