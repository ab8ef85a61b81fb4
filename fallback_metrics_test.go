package main

import (
	"os"
	"strings"
	"testing"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestFallbackSeriesOnlyWhenConfigured: without a fallback account no
// series carries account="fallback"; a reload that adds one creates its
// series at zero, those per receiver included.
func TestFallbackSeriesOnlyWhenConfigured(t *testing.T) {
	const fallbackBlock = "  fallback:\n    url: FALLBACK_URL\n    api_key: fallback-key\n"
	if !strings.Contains(fallbackConfig, fallbackBlock) {
		t.Fatal("fallbackConfig changed; update this test")
	}
	tb := newTestBridge(t, strings.Replace(fallbackConfig, fallbackBlock, "", 1), smsfake.Options{})
	fallbackSeries := func() map[string]bool {
		mfs, err := tb.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "account" && l.GetValue() == "fallback" {
						got[mf.GetName()] = true
					}
				}
			}
		}
		return got
	}
	if got := fallbackSeries(); len(got) != 0 {
		t.Errorf("series for a fallback nobody configured: %v", got)
	}

	fb := smsfake.NewServer(smsfake.Options{APIKey: "fallback-key", Credits: smsfake.Unlimited})
	defer fb.Close()
	cfg, err := os.ReadFile(tb.cfg)
	if err != nil {
		t.Fatal(err)
	}
	withFallback := strings.Replace(string(cfg), "  fallback_after: 1s\n", "  fallback_after: 1s\n"+strings.Replace(fallbackBlock, "FALLBACK_URL", fb.URL, 1), 1)
	if err := os.WriteFile(tb.cfg, []byte(withFallback), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tb.reload(); err != nil {
		t.Fatal(err)
	}
	got := fallbackSeries()
	for _, name := range []string{
		"smsbridge_sms_sent_total", "smsbridge_sms_segments_sent_total", "smsbridge_sms_numbers_accepted_total",
		"smsbridge_sms_api_requests_total", "smsbridge_dispatch_held", "smsbridge_dispatch_active_account",
	} {
		if !got[name] {
			t.Errorf("no %s{account=\"fallback\"} after the reload that added it", name)
		}
	}
	if v := tb.metricValue(t, "smsbridge_sms_sent_total", map[string]string{"receiver": "ops", "account": "fallback"}); v != 0 {
		t.Errorf("sms_sent_total{ops,fallback} = %v, want 0", v)
	}
}
