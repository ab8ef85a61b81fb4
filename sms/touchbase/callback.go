package touchbase

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/sms"
)

// The callback types the provider documents (sms-api.md, "Callbacks").
const (
	typeStatus = "MessageStatusUpdate"
	typeReply  = "MessageReply"
)

const (
	// maxEvents bounds the events read from one callback body. The
	// provider sends at most 500; a body with more is not the provider's.
	maxEvents = 1000
	// maxWord bounds a status word or a type name taken from a callback.
	maxWord = 64
	// maxReplyText bounds a reply's text: ten concatenated segments, more
	// than any answer to a page needs.
	maxReplyText = 1600
)

// failureWords are the status words that report a failed delivery,
// lower-cased. Every other word is information, as the full list is not
// documented.
var failureWords = map[string]bool{"failed": true, "undeliverable": true, "rejected": true, "expired": true}

var _ sms.Inbound = (*Client)(nil)

// callbackBody is one POST from the provider. Keys match in any case, as
// encoding/json does; unknown fields are ignored.
type callbackBody struct {
	Timestamp flexString      `json:"Timestamp"`
	Type      flexString      `json:"Type"`
	Events    json.RawMessage `json:"Events"`
}

type callbackEvent struct {
	Number  flexString `json:"Number"`
	Status  flexString `json:"Status"`
	ID      flexString `json:"Id"`
	Message flexString `json:"Message"`
}

// ParseCallback reads one callback of the provider:
//
//	{"Timestamp": "2021-12-08T15:09:24.9724224Z", "Type": "MessageStatusUpdate",
//	 "Events": [{"Number": "27728374958", "Status": "Delivered", "Id": "..."}]}
//
// It returns one Event per element of Events, in order:
//
//   - Type MessageStatusUpdate gives EventStatus, with Failed set only for
//     the words Failed, Undeliverable, Rejected and Expired in any case;
//     MessageReply gives EventReply with the reply's Message as Text. The
//     type is matched in any case.
//   - Numbers come without "+" (as strings or JSON numbers) and are
//     returned in E.164 form with "+". An event whose number is missing or
//     not a number cannot be matched to anything: it comes back as
//     EventUnknown, with the body's Type, its Status or Text and
//     ProviderID, and no Number, so that the caller counts it with the
//     events it ignores. So does an element of Events that is not an
//     object (with only Type and At).
//   - A Type the parser does not know gives one EventUnknown per event,
//     carrying only the Type and the time; a body of such a type without
//     events still gives one, so that every unknown body is counted.
//   - At is the body's Timestamp (RFC 3339, any number of fractional
//     digits; without a zone it is read as UTC), or zero if absent or
//     unreadable.
//
// Text from the provider is made safe to log and store: invalid UTF-8 is
// replaced, control characters and runs of blanks become one space, and
// each field is cut to a bounded length.
//
// A body that is not a JSON object, whose Events is neither absent, null
// nor a list, or that holds more than 1000 events (the provider sends at
// most 500) is an error. Errors never quote the body. The header is not
// used: the provider signs nothing, and the caller authenticates the
// request by the secret in its URL.
func (c *Client) ParseCallback(_ http.Header, body []byte) ([]sms.Event, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("callback body is empty")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("callback body is not a JSON object")
	}
	var b callbackBody
	if err := json.Unmarshal(trimmed, &b); err != nil {
		return nil, fmt.Errorf("callback body is not valid JSON: %w", err)
	}
	raws, err := callbackEvents(b.Events)
	if err != nil {
		return nil, err
	}
	typ := c.clean(string(b.Type), maxWord)
	at := parseTimestamp(string(b.Timestamp))
	kind := sms.EventUnknown
	switch {
	case strings.EqualFold(typ, typeStatus):
		kind = sms.EventStatus
	case strings.EqualFold(typ, typeReply):
		kind = sms.EventReply
	}
	if kind == sms.EventUnknown && len(raws) == 0 {
		return []sms.Event{{Kind: sms.EventUnknown, Type: typ, At: at}}, nil
	}
	events := make([]sms.Event, 0, len(raws))
	for _, raw := range raws {
		events = append(events, c.callbackEvent(kind, typ, at, raw))
	}
	return events, nil
}

// callbackEvents splits the Events list into its elements, reading at most
// maxEvents of them.
func callbackEvents(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] != '[' {
		return nil, errors.New("callback events are not a list")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("callback events: %w", err)
	}
	var out []json.RawMessage
	for dec.More() {
		if len(out) == maxEvents {
			return nil, fmt.Errorf("callback holds more than %d events; the provider sends at most 500", maxEvents)
		}
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("callback events: %w", err)
		}
		out = append(out, m)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("callback events: %w", err)
	}
	return out, nil
}

// callbackEvent turns one element of Events into an Event of kind (the
// body's type), or into EventUnknown if it cannot be used.
func (c *Client) callbackEvent(kind sms.EventKind, typ string, at time.Time, raw json.RawMessage) sms.Event {
	unknown := sms.Event{Kind: sms.EventUnknown, Type: typ, At: at}
	if kind == sms.EventUnknown {
		return unknown
	}
	var e callbackEvent
	if !bytes.HasPrefix(raw, []byte("{")) || json.Unmarshal(raw, &e) != nil {
		return unknown
	}
	ev := sms.Event{
		Kind:       kind,
		Type:       typ,
		Status:     c.clean(string(e.Status), maxWord),
		ProviderID: c.clean(string(e.ID), maxField),
		At:         at,
	}
	if kind == sms.EventStatus {
		ev.Failed = failureWords[strings.ToLower(ev.Status)]
	} else {
		ev.Text = c.clean(string(e.Message), maxReplyText)
	}
	number, ok := callbackNumber(string(e.Number))
	if !ok {
		// Keep what the event said, for the caller's log, but not as a
		// kind it would act on.
		ev.Kind, ev.Failed = sms.EventUnknown, false
		return ev
	}
	ev.Number = number
	return ev
}

// callbackNumber reads a number as the provider writes it in callbacks,
// without "+", and returns it in E.164 form.
func callbackNumber(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		// A negative JSON number; NormalizeNumber would take the sign
		// for a separator.
		return "", false
	}
	if !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "00") {
		s = "+" + s
	}
	n, err := sms.NormalizeNumber(s)
	return n, err == nil
}

// parseTimestamp reads the provider's Timestamp: RFC 3339 with seven
// fractional digits in its example, and perhaps without a zone (then UTC),
// as .NET writes it. Zero if it cannot be read.
func parseTimestamp(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
