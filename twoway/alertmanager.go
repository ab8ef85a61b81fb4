package twoway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// Reasons a silence was not created: the values of the reason label of
// smsbridge_silence_errors_total.
const (
	// ReasonUnreachable: no Alertmanager answered (connection refused,
	// timeout, DNS).
	ReasonUnreachable = "unreachable"
	// ReasonServerError: Alertmanager answered 5xx.
	ReasonServerError = "server_error"
	// ReasonUnauthorized: Alertmanager (or a proxy) answered 401 or 403:
	// http_config's credentials are wrong. Retried: a reload may fix it.
	ReasonUnauthorized = "unauthorized"
	// ReasonRejected: Alertmanager refused the silence (another 4xx); not
	// retried.
	ReasonRejected = "rejected"
	// ReasonBadResponse: a 2xx without a silence id.
	ReasonBadResponse = "bad_response"
	// ReasonExpired: the acknowledgement ended before a silence was
	// created; given up.
	ReasonExpired = "expired"
	// ReasonNotConfigured: alertmanager_api was removed while the silence
	// was pending; given up.
	ReasonNotConfigured = "not_configured"
)

// SilenceReasons lists every value of the reason label.
var SilenceReasons = []string{ReasonUnreachable, ReasonServerError, ReasonUnauthorized, ReasonRejected, ReasonBadResponse, ReasonExpired, ReasonNotConfigured}

// CreatedBy is the createdBy of every silence smsbridge creates.
const CreatedBy = "smsbridge"

// silencesPath is Alertmanager's API v2 endpoint for silences.
const silencesPath = "/api/v2/silences"

// maxResponse bounds what is read of Alertmanager's answer.
const maxResponse = 64 << 10

// Silence is one silence to create: every label of Matchers equal to its
// value, from StartsAt to EndsAt.
type Silence struct {
	Matchers         map[string]string
	StartsAt, EndsAt time.Time
	Comment          string
}

// Alertmanager creates silences through Alertmanager's API v2 (POST
// /api/v2/silences), in the first of its URLs that answers: the peers of
// an HA pair gossip a silence to each other.
type Alertmanager struct {
	urls    []*url.URL
	client  *http.Client
	timeout time.Duration
}

// NewAlertmanager returns a client for urls (http or https, without
// credentials: those go in cfg), each request bounded by timeout.
func NewAlertmanager(urls []string, timeout time.Duration, cfg commoncfg.HTTPClientConfig) (*Alertmanager, error) {
	if len(urls) == 0 {
		return nil, errors.New("alertmanager api: no urls")
	}
	a := &Alertmanager{timeout: timeout}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("alertmanager api: %q is not an http(s) URL without credentials", raw)
		}
		a.urls = append(a.urls, u)
	}
	client, err := commoncfg.NewClientFromConfig(cfg, "alertmanager_api", commoncfg.WithUserAgent("smsbridge"))
	if err != nil {
		return nil, fmt.Errorf("alertmanager api: %w", err)
	}
	a.client = client
	return a, nil
}

// URLs returns how many Alertmanagers the client tries.
func (a *Alertmanager) URLs() int { return len(a.urls) }

// Timeout is the longest one attempt at all URLs takes.
func (a *Alertmanager) Timeout() time.Duration { return time.Duration(len(a.urls)) * a.timeout }

// CloseIdleConnections releases the client's idle connections.
func (a *Alertmanager) CloseIdleConnections() { a.client.CloseIdleConnections() }

type apiMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

type apiSilence struct {
	Matchers  []apiMatcher `json:"matchers"`
	StartsAt  time.Time    `json:"startsAt"`
	EndsAt    time.Time    `json:"endsAt"`
	CreatedBy string       `json:"createdBy"`
	Comment   string       `json:"comment"`
}

// CreateSilence creates s and returns its id. It tries the URLs in order
// until one answers; Alertmanager refusing the silence (a 4xx other than
// 401 and 403) ends the attempt, since its peer would refuse it too. The
// error is a *APIError; it never holds a credential.
func (a *Alertmanager) CreateSilence(ctx context.Context, s Silence) (string, error) {
	if len(s.Matchers) == 0 {
		return "", &APIError{Reason: ReasonRejected, Permanent: true, Err: errors.New("a silence without matchers would silence everything")}
	}
	body := apiSilence{StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC(), CreatedBy: CreatedBy, Comment: s.Comment}
	for _, name := range slices.Sorted(maps.Keys(s.Matchers)) {
		body.Matchers = append(body.Matchers, apiMatcher{Name: name, Value: s.Matchers[name], IsEqual: true})
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return "", &APIError{Reason: ReasonRejected, Permanent: true, Err: fmt.Errorf("encode the silence: %w", err)}
	}
	var last *APIError
	for _, u := range a.urls {
		id, err := a.post(ctx, u, raw)
		if err == nil {
			return id, nil
		}
		last = err
		if err.Permanent || ctx.Err() != nil {
			break
		}
	}
	return "", last
}

// post creates the silence in the Alertmanager at base.
func (a *Alertmanager) post(ctx context.Context, base *url.URL, body []byte) (string, *APIError) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	target := base.JoinPath(silencesPath)
	where := base.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return "", &APIError{Reason: ReasonUnreachable, Err: fmt.Errorf("alertmanager %s: %w", where, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", &APIError{Reason: ReasonUnreachable, Err: fmt.Errorf("alertmanager %s: %w", where, err)}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	switch code := resp.StatusCode; {
	case code/100 == 2:
		var ok struct {
			SilenceID string `json:"silenceID"`
		}
		if json.Unmarshal(answer, &ok) != nil || ok.SilenceID == "" {
			return "", &APIError{Reason: ReasonBadResponse, Err: fmt.Errorf("alertmanager %s answered %d without a silence id", where, code)}
		}
		return ok.SilenceID, nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return "", &APIError{Reason: ReasonUnauthorized, Err: fmt.Errorf("alertmanager %s answered %d: check alertmanager_api.http_config", where, code)}
	case code/100 == 4:
		return "", &APIError{Reason: ReasonRejected, Permanent: true,
			Err: fmt.Errorf("alertmanager %s refused the silence (%d): %s", where, code, short(answer))}
	default:
		return "", &APIError{Reason: ReasonServerError, Err: fmt.Errorf("alertmanager %s answered %d: %s", where, code, short(answer))}
	}
}

// short is an answer's body on one line, cut short: Alertmanager answers
// errors as a JSON string or plain text.
func short(b []byte) string {
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = string(b)
	}
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "..."
	}
	if s == "" {
		s = "(no body)"
	}
	return s
}
