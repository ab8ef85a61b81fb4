package touchbase

import "testing"

func TestDigitsKey(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"+27831234567":  "27831234567",
		"27831234567":   "27831234567",
		"0027831234567": "27831234567",
		" +27 83 123":   "2783123",
		"":              "",
	}
	for in, want := range tests {
		if got := digitsKey(in); got != want {
			t.Errorf("digitsKey(%q) = %q, want %q", in, got, want)
		}
	}
}
