package sms

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string // want "" means invalid
		why      string // substring of the error
	}{
		{in: "+27831234567", want: "+27831234567"},
		{in: " +27 83 123 4567 ", want: "+27831234567"},
		{in: "+1 (202) 555-0123", want: "+12025550123"},
		{in: "+44.20.7946.0958", want: "+442079460958"},
		{in: "0044 20 7946 0958", want: "+442079460958"},
		{in: "+49/30/1234567", want: "+49301234567"},
		{in: "+27\u00a083\u00a01234567", want: "+27831234567"},
		{in: "+6834001", want: "+6834001"},                 // Niue: 7 digits in all
		{in: "+123456789012345", want: "+123456789012345"}, // 15 digits
		{in: "0831234567", why: "must start with +"},
		{in: "27831234567", why: "must start with +"},
		{in: "", why: "must start with +"},
		{in: "+", why: "no digits"},
		{in: "00", why: "no digits"},
		{in: "+0831234567", why: "country code cannot start with 0"},
		{in: "+123456", why: "at least 7"},
		{in: "+1234567890123456", why: "at most 15"},
		{in: "+27 83 ABC 4567", why: "unexpected character"},
		{in: "+27831234567 ext 12", why: "unexpected character"},
		{in: "27+831234567", why: "unexpected character"},
		{in: "++27831234567", why: "unexpected character"},
		{in: "+２７831234567", why: "unexpected character"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizeNumber(tc.in)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("NormalizeNumber(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("NormalizeNumber(%q) = %q, want an error", tc.in, got)
			}
			if !errors.Is(err, ErrInvalidNumber) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q, want ErrInvalidNumber saying %q", err, tc.why)
			}
			if len(tc.in) > 9 && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Errorf("error %q shows the number unmasked", err)
			}
		})
	}
}

func TestMaskNumber(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"+27831234567":      "+2783****567",
		"+2783123456":       "+278****56",
		"+278312345":        "+278****45",
		"+27831234":         "+27****34",
		"+2783123":          "+27****3",
		"27831234567":       "2783****567",
		"+1 (202) 555-0123": "+1202****123",
		"+123456":           "+****",
		"+1234":             "+****",
		"":                  "****",
		"call me maybe":     "****",
	}
	for in, want := range tests {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}
