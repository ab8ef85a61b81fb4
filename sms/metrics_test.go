package sms

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series maps each gathered series, as name{label=value,...} with labels in
// name order, to its counter value or histogram sample count.
func series(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			key += "}"
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if h := m.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return m.GetCounter().GetValue()
}

// TestMetricsPrecreated checks that every label combination of the
// primary account, and of the fallback once its client is built, exists at
// zero before anything happens; and none of a fallback nobody configured.
func TestMetricsPrecreated(t *testing.T) {
	t.Parallel()
	for _, accounts := range [][]string{{AccountPrimary}, {AccountPrimary, AccountFallback}} {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		for _, a := range accounts[1:] {
			m.Account(a)
		}
		checkPrecreated(t, series(t, reg), accounts)
	}
}

func checkPrecreated(t *testing.T, got map[string]float64, accounts []string) {
	t.Helper()
	var want []string
	for _, a := range accounts {
		for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
			want = append(want, "smsbridge_sms_api_requests_total{account="+a+",class="+c+"}")
		}
		for _, c := range []string{CodeInvalidNumber, CodeMissingInReply, CodeOther, "E101"} {
			want = append(want, "smsbridge_sms_numbers_rejected_total{account="+a+",code="+c+"}")
		}
		for _, n := range []string{
			"smsbridge_sms_api_request_duration_seconds", "smsbridge_sms_numbers_accepted_total",
			"smsbridge_sms_rate_limited_total", "smsbridge_sms_rate_limit_pause_seconds_total",
		} {
			want = append(want, n+"{account="+a+"}")
		}
	}
	for _, k := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("series %s not created", k)
		} else if v != 0 {
			t.Errorf("series %s = %v, want 0", k, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
}

func TestAccountMetricsRecord(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a := m.Account(AccountFallback)
	a.ObserveRequest(202, time.Second)
	a.ObserveRequest(503, time.Second)
	a.ObserveRequest(0, time.Second)
	a.NumberAccepted()
	a.NumberRejected("E101")
	a.NumberRejected("E999")
	a.NumberRejected(CodeInvalidNumber)
	a.RateLimited(17 * time.Second)
	a.RateLimited(0)
	a.RateLimited(-time.Second) // never subtracts

	got := series(t, reg)
	for k, want := range map[string]float64{
		"smsbridge_sms_api_requests_total{account=fallback,class=2xx}":               1,
		"smsbridge_sms_api_requests_total{account=fallback,class=5xx}":               1,
		"smsbridge_sms_api_requests_total{account=fallback,class=error}":             1,
		"smsbridge_sms_api_requests_total{account=primary,class=2xx}":                0,
		"smsbridge_sms_api_request_duration_seconds{account=fallback}":               3,
		"smsbridge_sms_numbers_accepted_total{account=fallback}":                     1,
		"smsbridge_sms_numbers_rejected_total{account=fallback,code=E101}":           1,
		"smsbridge_sms_numbers_rejected_total{account=fallback,code=other}":          1,
		"smsbridge_sms_numbers_rejected_total{account=fallback,code=invalid_number}": 1,
		"smsbridge_sms_rate_limited_total{account=fallback}":                         3,
		"smsbridge_sms_rate_limit_pause_seconds_total{account=fallback}":             17,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if _, ok := got["smsbridge_sms_numbers_rejected_total{account=fallback,code=E999}"]; ok {
		t.Error("an unknown code became a label value")
	}

	// The same account twice records into the same series.
	m.Account(AccountFallback).NumberAccepted()
	if v := series(t, reg)["smsbridge_sms_numbers_accepted_total{account=fallback}"]; v != 2 {
		t.Errorf("accepted = %v after a second recorder, want 2", v)
	}
}

func TestMetricsNil(t *testing.T) {
	t.Parallel()
	var m *Metrics
	a := m.Account(AccountPrimary)
	if a != nil {
		t.Fatalf("nil Metrics gave %v", a)
	}
	// None of these may panic.
	a.ObserveRequest(200, time.Second)
	a.NumberAccepted()
	a.NumberRejected("E101")
	a.RateLimited(time.Second)
}

func TestStatusClass(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]string{0: "error", 101: "error", 200: "2xx", 302: "3xx", 429: "4xx", 503: "5xx", 600: "error"} {
		if got := StatusClass(code); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", code, got, want)
		}
	}
}
