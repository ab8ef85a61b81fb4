package touchbase

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/sms"
)

// documentedAt is the Timestamp of the documentation's example.
var documentedAt = time.Date(2021, 12, 8, 15, 9, 24, 972422400, time.UTC)

func status(number, word string, failed bool) sms.Event {
	return sms.Event{Kind: sms.EventStatus, Type: typeStatus, Number: number, Status: word, Failed: failed, At: documentedAt}
}

func ignored(typ string) sms.Event {
	return sms.Event{Kind: sms.EventUnknown, Type: typ, At: documentedAt}
}

// TestParseCallback maps each fixture in testdata/callbacks to the events
// it must give, or to the error it must give.
func TestParseCallback(t *testing.T) {
	t.Parallel()
	replyAt := time.Date(2021, 12, 8, 15, 10, 2, 100000000, time.UTC)
	withAt := func(e sms.Event, at time.Time) sms.Event { e.At = at; return e }
	tests := []struct {
		file string
		want []sms.Event
		err  string // substring of the error; "" for none
	}{
		{file: "status-documented.json", want: []sms.Event{
			status("+27728374958", "Enroute", false),
			status("+27722738495", "Delivered", false),
			{Kind: sms.EventStatus, Type: typeStatus, Number: "+27720293845", Status: "Delivered", ProviderID: "slkedfjo938urxcvx9ejos", At: documentedAt},
		}},
		{file: "reply.json", want: []sms.Event{
			{Kind: sms.EventReply, Type: typeReply, Number: "+27728374958", Text: "ACK 12", At: replyAt},
			{Kind: sms.EventReply, Type: typeReply, Number: "+27722738495", Text: "stop", At: replyAt},
		}},
		{file: "status-words.json", want: []sms.Event{
			status("+27728374901", "Failed", true),
			status("+27728374902", "UNDELIVERABLE", true),
			status("+27728374903", "rejected", true),
			status("+27728374904", "Expired", true),
			status("+27728374905", "QUEUED", false),
			status("+27728374906", "Accepted", false),
			status("+27728374907", "Failed to deliver", false),
			status("+27728374908", "DeliveryFailed", false),
			status("+27728374909", "", false),
			status("+27728374910", "", false),
		}},
		{file: "numbers-as-json-numbers.json", want: []sms.Event{
			status("+27728374958", "Delivered", false),
			status("+27722738495", "Delivered", false),
			status("+27720293845", "Delivered", false),
			status("+27720293846", "Delivered", false),
		}},
		{file: "unusable-numbers.json", want: []sms.Event{
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Delivered", At: documentedAt},
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Failed", ProviderID: "no-number", At: documentedAt},
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Delivered", At: documentedAt},
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Delivered", At: documentedAt},
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Delivered", At: documentedAt},
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Delivered", At: documentedAt},
			{Kind: sms.EventUnknown, Type: typeStatus, Status: "Delivered", At: documentedAt},
			status("+27728374958", "Delivered", false),
		}},
		{file: "reply-unusable-number.json", want: []sms.Event{
			{Kind: sms.EventUnknown, Type: typeReply, Text: "ACK 12", At: replyAt},
		}},
		{file: "unknown-type.json", want: []sms.Event{ignored("MessageClicked"), ignored("MessageClicked")}},
		{file: "unknown-type-no-events.json", want: []sms.Event{ignored("WebhookTest")}},
		{file: "type-missing.json", want: []sms.Event{ignored("")}},
		{file: "lower-case-keys.json", want: []sms.Event{
			{Kind: sms.EventStatus, Type: "messagestatusupdate", Number: "+27728374958", Status: "delivered", ProviderID: "x1", At: documentedAt},
		}},
		{file: "timestamp-without-zone.json", want: []sms.Event{status("+27728374958", "Delivered", false)}},
		{file: "timestamp-with-offset.json", want: []sms.Event{
			withAt(status("+27728374958", "Delivered", false), time.Date(2021, 12, 8, 15, 9, 24, 0, time.UTC)),
		}},
		{file: "timestamp-unreadable.json", want: []sms.Event{withAt(status("+27728374958", "Delivered", false), time.Time{})}},
		{file: "timestamp-missing.json", want: []sms.Event{withAt(status("+27728374958", "Delivered", false), time.Time{})}},
		{file: "odd-elements.json", want: []sms.Event{
			ignored(typeStatus), ignored(typeStatus), ignored(typeStatus), ignored(typeStatus),
			{Kind: sms.EventUnknown, Type: typeStatus, At: documentedAt}, // {}: no number
			status("+27728374958", "Delivered", false),
		}},
		{file: "extra-fields.json", want: []sms.Event{
			{Kind: sms.EventStatus, Type: typeStatus, Number: "+27728374958", Status: "Delivered", ProviderID: "12345", At: documentedAt},
		}},
		{file: "events-empty.json", want: []sms.Event{}},
		{file: "events-null.json", want: []sms.Event{}},

		{file: "not-json.html", err: "not a JSON object"},
		{file: "empty.json", err: "empty"},
		{file: "blank.json", err: "empty"},
		{file: "array.json", err: "not a JSON object"},
		{file: "string.json", err: "not a JSON object"},
		{file: "null.json", err: "not a JSON object"},
		{file: "truncated.json", err: "not valid JSON"},
		{file: "trailing-garbage.json", err: "not valid JSON"},
		{file: "events-object.json", err: "events are not a list"},
		{file: "events-string.json", err: "events are not a list"},
	}
	c := newTestClient(t, "http://127.0.0.1/sms/messages", nil)
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", "callbacks", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.ParseCallback(http.Header{}, body)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q (events %+v)", err, tc.err, got)
				}
				if strings.Contains(err.Error(), "2772") {
					t.Errorf("error %q quotes the body", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, got, tc.want)
		})
	}
	files, err := os.ReadDir(filepath.Join("testdata", "callbacks"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[f.Name()] {
			t.Errorf("fixture %s is in no test case", f.Name())
		}
	}
}

func checkEvents(t *testing.T, got, want []sms.Event) {
	t.Helper()
	if got == nil {
		t.Error("nil events, want a (possibly empty) list")
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.At.Equal(w.At) {
			t.Errorf("event %d at %s, want %s", i, g.At, w.At)
		}
		g.At, w.At = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// TestParseCallbackBounds checks the cap on events and the cleaning and
// cutting of what the provider sends.
func TestParseCallbackBounds(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, "http://127.0.0.1/sms/messages", nil)
	events := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"Type":"MessageStatusUpdate","Events":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"Number":"2783%07d","Status":"Delivered"}`, i)
		}
		b.WriteString("]}")
		return b.String()
	}
	got, err := c.ParseCallback(nil, []byte(events(maxEvents)))
	if err != nil || len(got) != maxEvents || got[maxEvents-1].Number != fmt.Sprintf("+2783%07d", maxEvents-1) {
		t.Fatalf("%d events: %d parsed, %v", maxEvents, len(got), err)
	}
	if got, err := c.ParseCallback(nil, []byte(events(maxEvents+1))); err == nil || !strings.Contains(err.Error(), "more than 1000 events") || got != nil {
		t.Fatalf("%d events: %d parsed, %v; want an error", maxEvents+1, len(got), err)
	}

	long := strings.Repeat("é", maxReplyText)
	body, err := json.Marshal(map[string]any{"Type": "MessageReply", "Events": []map[string]string{{
		"Number": "27831234567", "Message": "ACK\t12\x00\n" + long, "Status": strings.Repeat("w", 500), "Id": strings.Repeat("i", 500),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err = c.ParseCallback(nil, body)
	if err != nil || len(got) != 1 {
		t.Fatalf("%+v, %v", got, err)
	}
	e := got[0]
	if !strings.HasPrefix(e.Text, "ACK 12 éé") || len(e.Text) > maxReplyText || !strings.HasSuffix(e.Text, "...") {
		t.Errorf("text %.40q... (%d bytes), want cleaned and cut to %d", e.Text, len(e.Text), maxReplyText)
	}
	if len(e.Status) > maxWord || len(e.ProviderID) > maxField {
		t.Errorf("status %d bytes, id %d bytes: not bounded", len(e.Status), len(e.ProviderID))
	}
	got, err = c.ParseCallback(nil, []byte("{\"Type\":\"Message\\u0000Clicked\xff"+strings.Repeat("x", 100)+"\"}"))
	if err != nil || len(got) != 1 || got[0].Kind != sms.EventUnknown || len(got[0].Type) > maxWord || strings.ContainsRune(got[0].Type, 0) {
		t.Errorf("odd type: %+v, %v", got, err)
	}
}

func TestParseTimestamp(t *testing.T) {
	t.Parallel()
	tests := map[string]time.Time{
		"2021-12-08T15:09:24.9724224Z":      documentedAt,
		" 2021-12-08T15:09:24.9724224Z ":    documentedAt,
		"2021-12-08T15:09:24.9724224":       documentedAt,
		"2021-12-08T15:09:24Z":              time.Date(2021, 12, 8, 15, 9, 24, 0, time.UTC),
		"2021-12-08T16:09:24.9724224+01:00": documentedAt,
		"2021-12-08":                        {},
		"":                                  {},
		"1638976164":                        {},
	}
	for in, want := range tests {
		if got := parseTimestamp(in); !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestCallbackEventsMalformed feeds callbackEvents lists that
// ParseCallback's own validation keeps from it, so that its errors are
// known to be errors, not panics.
func TestCallbackEventsMalformed(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`[`, `[{"a":}]`, `[1,]`} {
		if got, err := callbackEvents(json.RawMessage(in)); err == nil {
			t.Errorf("callbackEvents(%s) = %v, want an error", in, got)
		}
	}
}
