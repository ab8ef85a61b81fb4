package receiver

import (
	"strings"
	"testing"
)

// TestDecodeTypeErrors: a body or field of the wrong JSON type is told
// what JSON was expected, never a Go type name.
func TestDecodeTypeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"array body", `[]`, `field "the body" has the wrong type: got JSON array, want a JSON object`},
		{"string body", `"firing"`, `got JSON string, want a JSON object`},
		{"alerts an object", `{"version":"4","alerts":{}}`, `field "alerts" has the wrong type: got JSON object, want a JSON array`},
		{"count a string", `{"version":"4","truncatedAlerts":"x"}`, `field "truncatedAlerts" has the wrong type: got JSON string, want a whole number`},
		{"label a number", `{"version":"4","alerts":[{"labels":{"team":7}}]}`, `got JSON number, want a string`},
		{"labels an array", `{"version":"4","commonLabels":[]}`, `field "commonLabels" has the wrong type: got JSON array, want a JSON object`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeAlertmanager([]byte(tc.body), testNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			for _, goName := range []string{"amPayload", "receiver.", "template.", "[]", "int", "KV"} {
				if strings.Contains(strings.TrimPrefix(err.Error(), `field "the body"`), goName) && !strings.Contains(tc.want, goName) {
					t.Errorf("error %q names a Go type (%s)", err, goName)
				}
			}
		})
	}
}
