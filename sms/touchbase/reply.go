package touchbase

import (
	"bytes"
	"encoding/json"
	"html"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/smsbridge/smsbridge/sms"
)

const (
	// maxBody bounds how much of a reply is read. A 202 entry is about 200
	// bytes, so this holds the reply for some 20000 numbers; a 202 cut
	// short would not parse and be retried, so the bound is generous.
	maxBody = 4 << 20
	// maxMessage bounds the text of an error taken from a reply, so a
	// provider or proxy cannot flood logs through us.
	maxMessage = 256
	// maxField bounds each per-number field taken from a reply.
	maxField = 128
)

// flexString decodes a JSON string, number or null, and never fails: the
// provider's examples show numbers both quoted and bare, and error codes
// as null.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*f = ""
	if len(b) == 0 {
		return nil
	}
	switch c := b[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			*f = flexString(s)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		s := string(b)
		if strings.ContainsAny(s, ".eE") {
			// 2.783123456e10 is still a number; float64 holds 15 digits
			// exactly, which is all E.164 needs.
			if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(v, 0) {
				s = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		*f = flexString(s)
	}
	return nil
}

// flexBool decodes true/false, "true"/"false", 1/0 or null, and never
// fails. set is false when the field is absent or unreadable.
type flexBool struct{ set, v bool }

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(strings.ToLower(string(bytes.TrimSpace(b))), `"`) {
	case "true", "1":
		*f = flexBool{set: true, v: true}
	case "false", "0":
		*f = flexBool{set: true, v: false}
	default:
		*f = flexBool{}
	}
	return nil
}

// replyBody is the union of the provider's 202 body and its error body.
// Unknown fields are ignored; fields of an unexpected type read as empty.
type replyBody struct {
	Messages         json.RawMessage `json:"messages"`
	ErrorCode        flexString      `json:"errorCode"`
	Error            flexString      `json:"error"`
	ErrorDescription flexString      `json:"errorDescription"`
	Message          flexString      `json:"message"`
}

type replyEntry struct {
	APIMessageID     flexString `json:"apiMessageId"`
	Accepted         flexBool   `json:"accepted"`
	To               flexString `json:"to"`
	ErrorCode        flexString `json:"errorCode"`
	Error            flexString `json:"error"`
	ErrorDescription flexString `json:"errorDescription"`
}

// entries decodes messages[] one entry at a time, so a malformed entry costs
// only itself.
func (r *replyBody) entries() []replyEntry {
	var raw []json.RawMessage
	if json.Unmarshal(r.Messages, &raw) != nil {
		return nil
	}
	out := make([]replyEntry, 0, len(raw))
	for _, m := range raw {
		var e replyEntry
		if json.Unmarshal(m, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// topLevelError returns the whole-request error a body carries, or "".
func (r *replyBody) topLevelError() string {
	var parts []string
	for _, s := range []flexString{r.ErrorCode, r.Error, r.ErrorDescription} {
		if t := strings.TrimSpace(string(s)); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, ": ")
}

// interpretAccepted reads a 2xx reply into one sms.NumberResult per sent
// number (keyed by the number's digits). A reply that names none of the
// sent numbers is a transient error: the request may or may not have gone
// through, and repeating it risks a duplicate SMS where giving up risks a
// lost page.
func (c *Client) interpretAccepted(status int, body []byte, sent []string) (map[string]sms.NumberResult, *sms.Error) {
	want := make(map[string]bool, len(sent))
	for _, n := range sent {
		want[digitsKey(n)] = true
	}
	var rb replyBody
	isJSON := json.Unmarshal(body, &rb) == nil
	got := make(map[string]sms.NumberResult, len(sent))
	for _, e := range rb.entries() {
		k := digitsKey(string(e.To))
		if !want[k] {
			continue
		}
		if prev, ok := got[k]; ok && prev.Accepted {
			// A number named twice counts as accepted if either entry says so.
			continue
		}
		accepted := e.Accepted.v
		if !e.Accepted.set {
			accepted = e.APIMessageID != "" && e.ErrorCode == "" && e.Error == ""
		}
		got[k] = sms.NumberResult{
			Accepted:    accepted,
			MessageID:   c.clean(string(e.APIMessageID), maxField),
			ErrorCode:   c.clean(string(e.ErrorCode), maxField),
			Error:       c.clean(string(e.Error), maxField),
			Description: c.clean(string(e.ErrorDescription), maxMessage),
		}
	}
	top := c.clean(rb.topLevelError(), maxMessage)
	if len(got) == 0 {
		msg := "reply names none of the numbers sent"
		switch {
		case top != "":
			msg = "whole request failed: " + top
		case len(bytes.TrimSpace(body)) == 0:
			msg = "empty reply, no per-number results"
		case !isJSON:
			msg = "reply is not JSON, no per-number results: " + c.bodyText(body)
		}
		return nil, &sms.Error{Kind: sms.KindTransient, StatusCode: status, Message: msg}
	}
	for _, n := range sent {
		k := digitsKey(n)
		if _, ok := got[k]; ok {
			continue
		}
		desc := "the provider's reply did not mention this number"
		if top != "" {
			desc += "; whole request error: " + top
		}
		got[k] = sms.NumberResult{ErrorCode: sms.CodeMissingInReply, Error: "MissingInReply", Description: desc}
	}
	return got, nil
}

// interpretError classifies a non-2xx reply.
func (c *Client) interpretError(status int, h http.Header, body []byte, now time.Time) *sms.Error {
	msg := c.errorText(status, body)
	e := &sms.Error{StatusCode: status, Message: msg}
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = sms.KindRateLimited
		e.RetryAfter = pause(msg, body, h.Get("Retry-After"), now)
	case status == http.StatusUnauthorized:
		e.Kind = sms.KindUnauthorized
	case status == http.StatusForbidden:
		e.Kind = sms.KindSuspended
	case status == http.StatusMethodNotAllowed:
		e.Kind = sms.KindNoCredits
	case status == http.StatusBadRequest:
		e.Kind = sms.KindBadRequest
	case status >= 500 || status == http.StatusRequestTimeout:
		// 408 is a proxy or server that gave up waiting for us: as
		// transient as a 504.
		e.Kind = sms.KindTransient
		e.RetryAfter = retryAfterHeader(h.Get("Retry-After"), now)
	default:
		e.Kind = sms.KindPermanent
		if loc := h.Get("Location"); status/100 == 3 && loc != "" {
			e.Message = c.clean("redirect to "+loc+": "+msg, maxMessage)
		}
	}
	return e
}

// errorText is the provider's message from an error body, or a readable
// cut of whatever else came back.
func (c *Client) errorText(status int, body []byte) string {
	var rb replyBody
	if json.Unmarshal(body, &rb) == nil {
		if m := strings.TrimSpace(string(rb.Message)); m != "" {
			return c.clean(m, maxMessage)
		}
		if t := rb.topLevelError(); t != "" {
			return c.clean(t, maxMessage)
		}
	}
	if t := c.bodyText(body); t != "" {
		return t
	}
	return c.clean(http.StatusText(status)+" (empty body)", maxMessage)
}

var (
	titleRe = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	tagRe   = regexp.MustCompile(`(?s)<[^>]*>`)
	waitRe  = regexp.MustCompile(`(?i)(?:try\s+again|retry)\s+(?:in|after)\s+(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m)?\b`)
)

// bodyText turns a body that is not the provider's JSON (a proxy's HTML
// page, plain text) into one bounded line.
func (c *Client) bodyText(body []byte) string {
	s := string(body)
	if m := titleRe.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
		s = m[1]
	} else if strings.Contains(s, "<") {
		s = tagRe.ReplaceAllString(s, " ")
	}
	return c.clean(html.UnescapeString(s), maxMessage)
}

// clean makes provider-supplied text safe to log: the API key is removed
// (before cutting, so no part of it survives), control characters and runs
// of blanks become one space, invalid UTF-8 is replaced, and the result is
// cut to max bytes.
func (c *Client) clean(s string, max int) string {
	if c.apiKey != "" {
		s = redact(s, c.apiKey)
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	s = b.String()
	if len(s) <= max {
		return s
	}
	cut := max - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// pause is the wait a 429 announces: the larger of the seconds in its
// message and its Retry-After header, never more than sms.MaxRetryAfter,
// and 0 when it names none (the caller then applies its default pause).
// The message is searched first, then the start of the body, in case the
// sentence sits in a field we do not read.
func pause(msg string, body []byte, header string, now time.Time) time.Duration {
	inText := waitInText(msg)
	if inText == 0 {
		inText = waitInText(string(body[:min(len(body), 64<<10)]))
	}
	return min(max(inText, retryAfterHeader(header, now)), sms.MaxRetryAfter)
}

// waitInText finds "Try again in N seconds" (or minutes) in s; 0 if absent.
func waitInText(s string) time.Duration {
	m := waitRe.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v <= 0 {
		return 0
	}
	if strings.HasPrefix(strings.ToLower(m[2]), "m") {
		v *= 60
	}
	if v >= sms.MaxRetryAfter.Seconds() {
		return sms.MaxRetryAfter
	}
	// Round up: leaving a fraction of a second early is leaving early.
	return time.Duration(math.Ceil(v)) * time.Second
}

// retryAfterHeader reads Retry-After as delay-seconds or an HTTP date,
// capped at sms.MaxRetryAfter; 0 if absent, unreadable or past.
func retryAfterHeader(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(sms.MaxRetryAfter/time.Second) {
			return sms.MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			// Round up: the date has one-second resolution.
			return min(d.Round(time.Second)+time.Second, sms.MaxRetryAfter)
		}
	}
	return 0
}

// digitsKey reduces a number as the provider may echo it ("+2783...",
// "2783...", 2783..., "002783...") to its digits, so that both sides of a
// reply can be matched.
func digitsKey(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	k := b.String()
	if strings.HasPrefix(strings.TrimSpace(s), "00") {
		k = strings.TrimPrefix(k, "00")
	}
	return k
}
