package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/roster"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestOncallAcrossReload: a run-time override outlives a reload that
// changes the rotation; deleting it hands routing back to the (new)
// rotation; the members gauge and the page follow.
func TestOncallAcrossReload(t *testing.T) {
	tb := newTestBridge(t, oncallBridgeConfig, smsfake.Options{})
	ctx := context.Background()
	alertTo := func(name string) []string {
		t.Helper()
		code, body := tb.post(t, "/api/v1/alertmanager", amPayload(name, "x"))
		if code != 202 {
			t.Fatalf("alert %s: %d %v", name, code, body)
		}
		var to []string
		waitFor(t, "alert "+name, func() bool {
			to = to[:0]
			for _, m := range tb.fake.Messages() {
				if strings.Contains(m.Text, name) {
					to = append(to, m.Number)
				}
			}
			return len(to) > 0
		})
		return to
	}

	o, err := tb.roster.Add(ctx, "db-primary", roster.AddRequest{Members: []string{"erin"}, End: time.Now().Add(time.Hour).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if got := alertTo("BeforeReload"); !slices.Equal(got, []string{"+27830000005"}) {
		t.Errorf("with the override: %v", got)
	}
	// Only bob in the rotation now.
	cfg, err := os.ReadFile(tb.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "members: [alice, bob]", "members: [bob]", 1))
	if err := os.WriteFile(tb.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tb.reload(); err != nil {
		t.Fatal(err)
	}
	if got := alertTo("AfterReload"); !slices.Equal(got, []string{"+27830000005"}) {
		t.Errorf("the override after the reload: %v", got)
	}
	if err := tb.roster.Delete(ctx, "db-primary", o.ID); err != nil {
		t.Fatal(err)
	}
	if got := alertTo("AfterDelete"); !slices.Equal(got, []string{"+27830000002"}) {
		t.Errorf("the new rotation after the delete: %v", got)
	}

	code, metrics := statusRequest(t, "GET", tb.srv.URL+"/metrics", "")
	if code != 200 || !strings.Contains(metrics, `smsbridge_oncall_members{oncall="db-primary"} 1`) ||
		!strings.Contains(metrics, `smsbridge_notifications_muted_total{receiver="ops"} 0`) ||
		!strings.Contains(metrics, `smsbridge_notifications_received_total{outcome="muted",source="alertmanager"} 0`) {
		t.Errorf("metrics lack the on-call series")
	}
	code, page := statusRequest(t, "GET", tb.srv.URL+"/", "")
	if code != 200 || !strings.Contains(page, `id="oncall-db-primary"`) || !strings.Contains(page, "bob (&#43;2783****002)") ||
		strings.Contains(page, "27830000002") {
		t.Errorf("the page: %d", code)
	}
}
