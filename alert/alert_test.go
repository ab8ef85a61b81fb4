package alert

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
)

func TestCommon(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kvs  []template.KV
		want template.KV
	}{
		{"none", nil, template.KV{}},
		{"one", []template.KV{{"a": "1", "b": "2"}}, template.KV{"a": "1", "b": "2"}},
		{"shared and not", []template.KV{{"a": "1", "b": "2"}, {"a": "1", "b": "3"}}, template.KV{"a": "1"}},
		{"missing in one", []template.KV{{"a": "1", "b": "2"}, {"a": "1"}}, template.KV{"a": "1"}},
		// An empty value is a value: a key missing elsewhere is not shared.
		{"empty value vs missing", []template.KV{{"a": ""}, {}}, template.KV{}},
		{"empty value shared", []template.KV{{"a": ""}, {"a": ""}}, template.KV{"a": ""}},
		{"nil map", []template.KV{{"a": "1"}, nil}, template.KV{}},
		{"nothing shared", []template.KV{{"a": "1"}, {"b": "1"}}, template.KV{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Common(tc.kvs)
			if got == nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Common(%v) = %#v, want %v", tc.kvs, got, tc.want)
			}
		})
	}
}

func notification() *Notification {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	return &Notification{
		Source:          SourceAlertmanager,
		GroupKey:        `{}:{alertname="DiskFull"}`,
		TruncatedAlerts: 4,
		ReceivedAt:      at,
		Data: template.Data{
			Receiver: "smsbridge",
			Status:   StatusFiring,
			Alerts: template.Alerts{
				{Status: StatusFiring, Labels: template.KV{"alertname": "DiskFull", "instance": "db1", "team": "db"}, Annotations: template.KV{"summary": "db1 full", "runbook": "r"}},
				{Status: StatusResolved, Labels: template.KV{"alertname": "DiskFull", "instance": "db2", "team": "db"}, Annotations: template.KV{"summary": "db2 full", "runbook": "r"}},
				{Status: StatusResolved, Labels: template.KV{"alertname": "DiskFull", "instance": "web1", "team": "web"}, Annotations: template.KV{"summary": "web1 full", "runbook": "r"}},
			},
			GroupLabels:       template.KV{"alertname": "DiskFull"},
			CommonLabels:      template.KV{"alertname": "DiskFull"},
			CommonAnnotations: template.KV{"runbook": "r"},
			ExternalURL:       "http://am.example:9093",
		},
	}
}

func TestSubset(t *testing.T) {
	t.Parallel()
	n := notification()
	before := *n
	all := n.Data.Alerts
	tests := []struct {
		name        string
		alerts      template.Alerts
		status      string
		labels      template.KV
		annotations template.KV
	}{
		{"all", all, StatusFiring, template.KV{"alertname": "DiskFull"}, template.KV{"runbook": "r"}},
		{"firing one", all[:1], StatusFiring, all[0].Labels, all[0].Annotations},
		{"resolved db", all[1:2], StatusResolved, all[1].Labels, all[1].Annotations},
		{"resolved two", all[1:], StatusResolved, template.KV{"alertname": "DiskFull"}, template.KV{"runbook": "r"}},
		{"db team", all[:2], StatusFiring, template.KV{"alertname": "DiskFull", "team": "db"}, template.KV{"runbook": "r"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := n.Subset(tc.alerts)
			if s == n {
				t.Fatal("Subset returned n itself")
			}
			if len(s.Data.Alerts) != len(tc.alerts) || s.Data.Status != tc.status {
				t.Errorf("alerts %d status %q, want %d %q", len(s.Data.Alerts), s.Data.Status, len(tc.alerts), tc.status)
			}
			if !reflect.DeepEqual(s.Data.CommonLabels, tc.labels) || !reflect.DeepEqual(s.Data.CommonAnnotations, tc.annotations) {
				t.Errorf("common labels %v annotations %v, want %v %v", s.Data.CommonLabels, s.Data.CommonAnnotations, tc.labels, tc.annotations)
			}
			kept := s.Source == n.Source && s.GroupKey == n.GroupKey && s.TruncatedAlerts == n.TruncatedAlerts &&
				s.ReceivedAt.Equal(n.ReceivedAt) && s.Data.ExternalURL == n.Data.ExternalURL && s.Data.Receiver == n.Data.Receiver &&
				reflect.DeepEqual(s.Data.GroupLabels, n.Data.GroupLabels)
			if !kept {
				t.Errorf("Subset lost a field: %+v", s)
			}
		})
	}
	if !reflect.DeepEqual(*n, before) {
		t.Error("Subset modified the notification")
	}
}

func TestRouteLabels(t *testing.T) {
	t.Parallel()
	n := &Notification{Data: template.Data{
		CommonLabels: template.KV{"team": "db", "env": "prod"},
		Alerts: template.Alerts{
			{Labels: template.KV{"env": "staging", "instance": "a"}},
			{Labels: nil},
		},
	}}
	got := n.RouteLabels()
	want := []map[string]string{
		{"team": "db", "env": "staging", "instance": "a"},
		{"team": "db", "env": "prod"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RouteLabels = %v, want %v", got, want)
	}
	got[1]["team"] = "changed"
	if n.Data.CommonLabels["team"] != "db" {
		t.Error("RouteLabels shares a map with the notification")
	}
	if l := (&Notification{}).RouteLabels(); len(l) != 0 {
		t.Errorf("no alerts: %v", l)
	}
}

func TestMergeLabels(t *testing.T) {
	t.Parallel()
	common := map[string]string{"team": "db", "env": "prod"}
	labels := map[string]string{"env": "staging", "instance": "a"}
	c, l := maps.Clone(common), maps.Clone(labels)
	got := MergeLabels(common, labels)
	if want := map[string]string{"team": "db", "env": "staging", "instance": "a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MergeLabels = %v, want %v", got, want)
	}
	if !maps.Equal(common, c) || !maps.Equal(labels, l) {
		t.Errorf("MergeLabels modified its inputs: %v %v", common, labels)
	}
	if got := MergeLabels(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("MergeLabels(nil, nil) = %#v", got)
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	// Pinned: Alertmanager's fingerprint (model.LabelSet) of these labels.
	// A change here changes every stored group and dedup key.
	tests := []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"alertname": "DiskFull", "instance": "db1:9100"}, "3d8fc23df68d2038"},
		{template.KV{"instance": "db1:9100", "alertname": "DiskFull"}, "3d8fc23df68d2038"},
		{nil, "cbf29ce484222325"},
	}
	for _, tc := range tests {
		if got := Fingerprint(tc.labels); got != tc.want {
			t.Errorf("Fingerprint(%v) = %s, want %s", tc.labels, got, tc.want)
		}
	}
	if Fingerprint(map[string]string{"a": "1"}) == Fingerprint(map[string]string{"a": "2"}) {
		t.Error("different labels, same fingerprint")
	}
}

func TestAlertName(t *testing.T) {
	t.Parallel()
	named := func(names ...string) template.Alerts {
		var as template.Alerts
		for _, n := range names {
			l := template.KV{"instance": "i"}
			if n != "" {
				l["alertname"] = n
			}
			as = append(as, template.Alert{Status: StatusFiring, Labels: l})
		}
		return as
	}
	tests := []struct {
		name   string
		common template.KV
		alerts template.Alerts
		want   string
	}{
		{"common", template.KV{"alertname": "DiskFull"}, named("DiskFull", "DiskFull"), "DiskFull"},
		{"common wins", template.KV{"alertname": "A"}, named("B"), "A"},
		{"one alert, no common labels", template.KV{}, named("HighLatency"), "HighLatency"},
		{"distinct, in order, once each", nil, named("B", "A", "B"), "B, A"},
		{"more than three", nil, named("A", "B", "C", "D", "E", "D"), "A, B, C +2 more"},
		{"unnamed alerts skipped", nil, named("", "A", ""), "A"},
		{"none", nil, named("", ""), ""},
		{"no alerts", nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := &Notification{Data: template.Data{CommonLabels: tc.common, Alerts: tc.alerts}}
			if got := n.AlertName(); got != tc.want {
				t.Errorf("AlertName() = %q, want %q", got, tc.want)
			}
		})
	}
}
