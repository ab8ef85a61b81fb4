package status

import (
	"strings"
	"testing"

	"github.com/smsbridge/smsbridge/sms"
)

// TestMaskGroupKey: the answers to replies are grouped by the number that
// replied; the API shows that number masked, like every other.
func TestMaskGroupKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"replies:+27830000001", "replies:" + sms.MaskNumber("+27830000001")},
		{`{}:{alertname="DiskFull"}`, `{}:{alertname="DiskFull"}`},
		{"replies:", "replies:"},
		{"ci:build-42", "ci:build-42"},
	} {
		got := maskGroupKey(tc.in)
		if got != tc.want {
			t.Errorf("maskGroupKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "0000001") {
			t.Errorf("maskGroupKey(%q) shows the number: %q", tc.in, got)
		}
	}
}
