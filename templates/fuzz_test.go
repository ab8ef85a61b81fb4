package templates

import (
	"strings"
	"testing"
)

// fuzzSeeds are inputs that exercise every path of the encoder.
var fuzzSeeds = []string{
	"",
	"plain ascii text",
	"{[~]}|\\^€\f",
	"éèÇ ê ł Œ e\u0301 x\u0301",
	"“smart” ‘quotes’ – — … • → ™ ° ½",
	"🔥👍🏽👨‍👩‍👧 日本語 한국어 Привет",
	"a\r\nb\rc\td\x00e\u2028",
	"bad \xff\xc3 utf8",
	strings.Repeat("word ", 200),
	strings.Repeat("{", 200),
	strings.Repeat("a", 152) + "{" + strings.Repeat("a", 152),
}

// FuzzFit asserts that, for any input and budget, Fit returns pure GSM-7
// within the budget, untouched when ToGSM already fits, and marked "..."
// when cut.
func FuzzFit(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, i%5)
	}
	f.Fuzz(func(t *testing.T, s string, budget int) {
		budget %= 8 // large budgets only make the fuzzer's inputs bigger
		out := Fit(s, budget)
		if budget <= 0 {
			budget = DefaultMaxSegments
		}
		if !IsGSM(out) {
			t.Fatalf("Fit(%q, %d) = %q is not GSM-7", s, budget, out)
		}
		if got := Segments(out); got > budget {
			t.Fatalf("Fit(%q, %d) = %q takes %d segments", s, budget, out, got)
		}
		g := ToGSM(s)
		if Segments(g) <= budget {
			if out != g {
				t.Fatalf("Fit(%q, %d) = %q, want it untouched: %q", s, budget, out, g)
			}
			return
		}
		if !strings.HasSuffix(out, ellipsis) {
			t.Fatalf("Fit(%q, %d) = %q was cut without %q", s, budget, out, ellipsis)
		}
		if head := strings.TrimSuffix(out, ellipsis); !strings.HasPrefix(g, head) {
			t.Fatalf("Fit(%q, %d) = %q is not a prefix of %q", s, budget, out, g)
		}
	})
}

// FuzzToGSM asserts that ToGSM always returns sendable text, is idempotent,
// and that Septets and Segments count what ToGSM would send.
func FuzzToGSM(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g := ToGSM(s)
		if !IsGSM(g) {
			t.Fatalf("ToGSM(%q) = %q is not GSM-7", s, g)
		}
		if again := ToGSM(g); again != g {
			t.Fatalf("ToGSM not idempotent: %q -> %q -> %q", s, g, again)
		}
		if strings.ContainsAny(g, "\r\f") {
			t.Fatalf("ToGSM(%q) = %q keeps a carriage return or form feed", s, g)
		}
		if Septets(s) != Septets(g) || Segments(s) != Segments(g) {
			t.Fatalf("counts differ for %q and ToGSM %q", s, g)
		}
	})
}
