package twoway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// TestGroupState: the query names each label as an equality matcher (with
// the values escaped), asks for every state, and sums up the answer; an
// Alertmanager that fails makes the next one asked, one that refuses
// ends it.
func TestGroupState(t *testing.T) {
	t.Parallel()
	var gotQuery []string
	answer := func(body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.URL.Path != "/api/v2/alerts" {
				http.NotFound(w, r)
				return
			}
			q := r.URL.Query()
			gotQuery = append(q["filter"], q.Get("active"), q.Get("silenced"), q.Get("inhibited"), q.Get("unprocessed"))
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	withStatus := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			fmt.Fprint(w, `"bad matcher"`)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	const mixed = `[
		{"labels": {"alertname": "Disk"}, "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}},
		{"labels": {"alertname": "Disk"}, "status": {"state": "suppressed", "silencedBy": ["s2", "s1"], "inhibitedBy": []}},
		{"labels": {"alertname": "Disk"}, "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": ["fp9"]}},
		{"labels": {"alertname": "Disk"}, "status": {"state": "unprocessed", "silencedBy": [], "inhibitedBy": []}}]`
	const silenced = `[{"status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}},
		{"status": {"state": "suppressed", "silencedBy": [], "inhibitedBy": ["fp1"]}}]`
	for _, tc := range []struct {
		name      string
		urls      []string
		want      GroupState
		reason    string
		permanent bool
	}{
		{"mixed", []string{answer(mixed)}, GroupState{Alerts: 4, Active: 2, SilencedBy: []string{"s1", "s2"}, InhibitedBy: []string{"fp9"}}, "", false},
		{"all suppressed", []string{answer(silenced)}, GroupState{Alerts: 2, SilencedBy: []string{"s1"}, InhibitedBy: []string{"fp1"}}, "", false},
		{"gone", []string{answer(`[]`)}, GroupState{}, "", false},
		{"the first is down: the second", []string{downURL, answer(silenced)}, GroupState{Alerts: 2, SilencedBy: []string{"s1"}, InhibitedBy: []string{"fp1"}}, "", false},
		{"the first fails: the second", []string{withStatus(http.StatusBadGateway), answer(`[]`)}, GroupState{}, "", false},
		{"all down", []string{downURL}, GroupState{}, ReasonUnreachable, false},
		{"server error", []string{withStatus(http.StatusInternalServerError)}, GroupState{}, ReasonServerError, false},
		{"unauthorized", []string{withStatus(http.StatusUnauthorized)}, GroupState{}, ReasonUnauthorized, false},
		{"refused: the peer is not asked", []string{withStatus(http.StatusBadRequest), answer(`[]`)}, GroupState{}, ReasonRejected, true},
		{"not JSON", []string{answer(`<html>`)}, GroupState{}, ReasonBadResponse, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewAlertmanager(tc.urls, time.Second, commoncfg.DefaultHTTPClientConfig)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.GroupState(context.Background(), map[string]string{"team": `d"b`, "alertname": "Disk"})
			if tc.reason != "" {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Reason != tc.reason || ae.Permanent != tc.permanent {
					t.Errorf("error %#v, want reason %s (permanent %t)", err, tc.reason, tc.permanent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Alerts != tc.want.Alerts || got.Active != tc.want.Active || !slices.Equal(got.SilencedBy, tc.want.SilencedBy) ||
				!slices.Equal(got.InhibitedBy, tc.want.InhibitedBy) {
				t.Errorf("state %+v, want %+v", got, tc.want)
			}
		})
	}
	if want := []string{`alertname="Disk"`, `team="d\"b"`, "true", "true", "true", "true"}; !slices.Equal(gotQuery, want) {
		t.Errorf("query %q, want %q", gotQuery, want)
	}
	c, _ := NewAlertmanager([]string{answer(`[]`)}, time.Second, commoncfg.DefaultHTTPClientConfig)
	if _, err := c.GroupState(context.Background(), nil); err == nil {
		t.Error("a query without labels would ask for every alert")
	}
}

// TestGroupStateSecrets: the password reaches Alertmanager in the header
// only; no error holds it.
func TestGroupStateSecrets(t *testing.T) {
	t.Parallel()
	const pass = "am-query-pa55w0rd"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p, _ := r.BasicAuth(); p != pass {
			t.Errorf("Alertmanager got password %q", p)
		}
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "echo: "+r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	cfg := commoncfg.DefaultHTTPClientConfig
	cfg.BasicAuth = &commoncfg.BasicAuth{Username: "sb", Password: commoncfg.Secret(pass)}
	c, err := NewAlertmanager([]string{srv.URL}, time.Second, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GroupState(context.Background(), map[string]string{"a": "b"})
	if err == nil || strings.Contains(err.Error(), pass) {
		t.Errorf("the password leaks: %v", err)
	}
}
