package plural

import "testing"

func TestCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int
		want string
	}{
		{0, "0 numbers"},
		{1, "1 number"},
		{2, "2 numbers"},
		{-1, "-1 numbers"},
		{1000, "1000 numbers"},
	}
	for _, tc := range tests {
		if got := Count(tc.n, "number", "numbers"); got != tc.want {
			t.Errorf("Count(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
