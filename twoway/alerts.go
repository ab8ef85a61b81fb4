package twoway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// alertsPath is Alertmanager's API v2 endpoint for alerts.
const alertsPath = "/api/v2/alerts"

// maxAlertsResponse bounds what is read of Alertmanager's list of alerts:
// a group's alerts, each a few hundred bytes, even in a storm.
const maxAlertsResponse = 4 << 20

// GroupState is what Alertmanager shows of the alerts a group's labels
// select: those not resolved, each active (or not yet processed) or
// suppressed by silences or inhibitions.
type GroupState struct {
	// Alerts counts the alerts; Active those neither silenced nor
	// inhibited, which Alertmanager would notify.
	Alerts, Active int
	// SilencedBy and InhibitedBy are the ids of the silences and
	// inhibiting alerts that suppress the others, each once, sorted.
	SilencedBy, InhibitedBy []string
}

// APIError is why a request to Alertmanager's API failed. Permanent
// errors are not worth retrying: Alertmanager refused the request.
type APIError struct {
	Reason    string
	Permanent bool
	Err       error
}

func (e *APIError) Error() string { return e.Err.Error() }
func (e *APIError) Unwrap() error { return e.Err }

type apiAlert struct {
	Status struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// GroupState asks Alertmanager (GET /api/v2/alerts) for the alerts every
// label of matchers selects, equal to its value, and sums up their state.
// It tries the URLs in order until one answers (both peers of an HA pair
// hold the alerts Prometheus sends them, and share their silences); a 4xx
// other than 401 and 403 ends the attempt. The error is an *APIError; it
// never holds a credential.
func (a *Alertmanager) GroupState(ctx context.Context, matchers map[string]string) (GroupState, error) {
	if len(matchers) == 0 {
		return GroupState{}, &APIError{Reason: ReasonRejected, Permanent: true, Err: errors.New("no labels to select the group's alerts by")}
	}
	q := url.Values{}
	for _, name := range slices.Sorted(maps.Keys(matchers)) {
		m := labels.Matcher{Type: labels.MatchEqual, Name: name, Value: matchers[name]}
		q.Add("filter", m.String())
	}
	for _, k := range []string{"active", "silenced", "inhibited", "unprocessed"} {
		q.Set(k, "true")
	}
	var last *APIError
	for _, u := range a.urls {
		st, err := a.alerts(ctx, u, q)
		if err == nil {
			return st, nil
		}
		last = err
		if err.Permanent || ctx.Err() != nil {
			break
		}
	}
	return GroupState{}, last
}

// alerts asks the Alertmanager at base.
func (a *Alertmanager) alerts(ctx context.Context, base *url.URL, q url.Values) (GroupState, *APIError) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	target := base.JoinPath(alertsPath)
	target.RawQuery = q.Encode()
	where := base.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return GroupState{}, &APIError{Reason: ReasonUnreachable, Err: fmt.Errorf("alertmanager %s: %w", where, err)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return GroupState{}, &APIError{Reason: ReasonUnreachable, Err: fmt.Errorf("alertmanager %s: %w", where, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAlertsResponse+1))
	if err != nil {
		return GroupState{}, &APIError{Reason: ReasonUnreachable, Err: fmt.Errorf("alertmanager %s: read the alerts: %w", where, err)}
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return GroupState{}, &APIError{Reason: ReasonUnauthorized, Err: fmt.Errorf("alertmanager %s answered %d: check alertmanager_api.http_config", where, code)}
	case code/100 == 4:
		return GroupState{}, &APIError{Reason: ReasonRejected, Permanent: true,
			Err: fmt.Errorf("alertmanager %s refused the query of alerts (%d): %s", where, code, short(body))}
	default:
		return GroupState{}, &APIError{Reason: ReasonServerError, Err: fmt.Errorf("alertmanager %s answered %d: %s", where, code, short(body))}
	}
	if len(body) > maxAlertsResponse {
		return GroupState{}, &APIError{Reason: ReasonBadResponse, Err: fmt.Errorf("alertmanager %s answered more than %d bytes of alerts", where, maxAlertsResponse)}
	}
	var alerts []apiAlert
	if err := json.Unmarshal(body, &alerts); err != nil {
		return GroupState{}, &APIError{Reason: ReasonBadResponse, Err: fmt.Errorf("alertmanager %s answered alerts that are not JSON: %w", where, err)}
	}
	var st GroupState
	for _, al := range alerts {
		st.Alerts++
		s := al.Status
		if s.State != "suppressed" || (len(s.SilencedBy) == 0 && len(s.InhibitedBy) == 0) {
			st.Active++
		}
		for _, id := range s.SilencedBy {
			if !slices.Contains(st.SilencedBy, id) {
				st.SilencedBy = append(st.SilencedBy, id)
			}
		}
		for _, id := range s.InhibitedBy {
			if !slices.Contains(st.InhibitedBy, id) {
				st.InhibitedBy = append(st.InhibitedBy, id)
			}
		}
	}
	slices.Sort(st.SilencedBy)
	slices.Sort(st.InhibitedBy)
	return st, nil
}
