package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The Type of the provider's callbacks.
const (
	// TypeStatus is the Type of a callback of delivery statuses.
	TypeStatus = "MessageStatusUpdate"
	// TypeReply is the Type of a callback of replies from recipients.
	TypeReply = "MessageReply"
)

// maxCallbackEvents is how many events the provider puts in one callback
// at most.
const maxCallbackEvents = 500

// StatusDelivered is the status word the fake reports for a number that
// was not told to fail with FailDelivery.
const StatusDelivered = "Delivered"

// timestampLayout writes times as the provider does: UTC with seven
// fractional digits, "2021-12-08T15:09:24.9724224Z".
const timestampLayout = "2006-01-02T15:04:05.0000000Z07:00"

// callbackBody is one POST of the provider to a webhook.
type callbackBody struct {
	Timestamp string `json:"Timestamp"`
	Type      string `json:"Type"`
	Events    []any  `json:"Events"`
}

type statusEvent struct {
	Number string `json:"Number"`
	Status string `json:"Status"`
}

type replyEvent struct {
	Number  string `json:"Number"`
	Message string `json:"Message"`
}

// FailDelivery makes the delivery callbacks for number report word (a
// failure word such as "Failed" or "Undeliverable", or any other status)
// instead of "Delivered", for every message accepted from now on. The
// number is matched with or without its "+". An empty word undoes it, as
// does ClearFaults.
func (s *Server) FailDelivery(number, word string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := callbackNumber(number)
	if word == "" {
		delete(s.deliveryWords, k)
		return
	}
	if s.deliveryWords == nil {
		s.deliveryWords = map[string]string{}
	}
	s.deliveryWords[k] = word
}

// SetCallbackURL points the fake's callbacks at u from now on (a test
// whose bridge listens only after the fake was made); "" stops them.
func (s *Server) SetCallbackURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callback = u
}

// callbackURL is where callbacks go now.
func (s *Server) callbackURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callback
}

// Reply POSTs a MessageReply callback to Options.CallbackURL, as the
// provider does when a recipient answers: one event from number (sent
// without its leading "+", as the provider writes numbers) with text as
// its Message. It fails if no CallbackURL is set, if the fake is closed,
// or if the callback is not answered with a 2xx.
func (s *Server) Reply(ctx context.Context, number, text string) error {
	if s.callbackURL() == "" {
		return errors.New("fake sms api: no callback url to send a reply to")
	}
	if !s.track() {
		return errors.New("fake sms api: closed")
	}
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	return s.postCallback(ctx, TypeReply, []any{replyEvent{Number: callbackNumber(number), Message: text}})
}

// scheduleReceipts sends the delivery callbacks for msgs, just accepted,
// Options.CallbackDelay from now, in POSTs of at most 500 events. The
// status of each is fixed now, by FailDelivery. Callbacks still waiting
// when the fake is closed are not sent.
func (s *Server) scheduleReceipts(msgs []Message) {
	if s.callbackURL() == "" || len(msgs) == 0 {
		return
	}
	events := make([]any, len(msgs))
	s.mu.Lock()
	for i, m := range msgs {
		n := callbackNumber(m.Number)
		word := s.deliveryWords[n]
		if word == "" {
			word = StatusDelivered
		}
		events[i] = statusEvent{Number: n, Status: word}
	}
	s.mu.Unlock()
	if !s.track() {
		return
	}
	go func() {
		defer s.wg.Done()
		if !s.sleep(s.opts.CallbackDelay) {
			return
		}
		for batch := range slices.Chunk(events, maxCallbackEvents) {
			// A failed callback is logged and not retried: the bridge must
			// cope with receipts that never come.
			_ = s.postCallback(s.ctx, TypeStatus, batch)
		}
	}()
}

// sleep waits for d, or until the fake is closed; false if it was closed.
func (s *Server) sleep(d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
	}
	return s.ctx.Err() == nil
}

// postCallback POSTs one callback of type typ. Its error, which it also
// logs, never holds the callback URL: the URL is the webhook's secret.
func (s *Server) postCallback(ctx context.Context, typ string, events []any) error {
	err := s.post(ctx, typ, events)
	if s.opts.Logger != nil {
		if err != nil {
			s.opts.Logger.Warn("fake sms api callback failed", "type", typ, "events", len(events), "err", err)
		} else {
			s.opts.Logger.Info("fake sms api sent callback", "type", typ, "events", len(events))
		}
	}
	return err
}

func (s *Server) post(ctx context.Context, typ string, events []any) error {
	body, err := json.Marshal(callbackBody{Timestamp: s.now().UTC().Format(timestampLayout), Type: typ, Events: events})
	if err != nil {
		return fmt.Errorf("fake sms api: encode callback: %w", err)
	}
	target := s.callbackURL()
	if target == "" {
		return errors.New("fake sms api: no callback url")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fake sms api: callback: %w", withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "smsbridge-fake-sms-api")
	resp, err := s.callbacks.Do(req)
	if err != nil {
		return fmt.Errorf("fake sms api: post callback: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("fake sms api: callback answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

// withoutURL drops the URL a *url.Error repeats.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// callbackNumber writes a number as the provider does in callbacks:
// without its leading "+".
func callbackNumber(n string) string {
	return strings.TrimPrefix(strings.TrimSpace(n), "+")
}
