package templates

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// gsmBasic is the GSM 03.38 default alphabet in code order, 0x00 to 0x7F,
// as printed in 3GPP TS 23.038 section 6.2.1. 0x1B is the escape to the
// extension table and stands for no character.
var gsmBasic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', -1, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExtension is the extension table (reached through 0x1B), code to rune.
var gsmExtension = map[byte]rune{
	0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\',
	0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€',
}

// TestSeptetWidthMatchesSpec checks the hand-written septetWidth against
// the tables above for every Unicode code point.
func TestSeptetWidthMatchesSpec(t *testing.T) {
	t.Parallel()
	want := map[rune]int{}
	for _, r := range gsmBasic {
		if r >= 0 {
			want[r] = 1
		}
	}
	for _, r := range gsmExtension {
		if _, dup := want[r]; dup {
			t.Fatalf("%q in both tables", r)
		}
		want[r] = 2
	}
	if len(want) != 127+10 {
		t.Fatalf("tables hold %d runes, want 137", len(want))
	}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if got := septetWidth(r); got != want[r] {
			t.Errorf("septetWidth(%U %q) = %d, want %d", r, r, got, want[r])
		}
	}
}

func TestIsGSM(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"Hello @ £5 {ok} €", true},
		{"line\r\nform\f", true},
		{"tab\t", false},
		{"back`tick", false},
		{"ê", false},
		{"😀", false},
		{"bad \xff byte", false},
	}
	for _, tt := range tests {
		if got := IsGSM(tt.in); got != tt.want {
			t.Errorf("IsGSM(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestToGSM(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"ascii", "CPU at 93% on web-01", "CPU at 93% on web-01"},
		{"extension kept", "{a} [b] ~c | d \\ e ^ f €", "{a} [b] ~c | d \\ e ^ f €"},
		{"basic table accents kept", "éèùìòÇØøÅåÄÖÑÜäöñüàÉÆæß§¿¡£¥¤", "éèùìòÇØøÅåÄÖÑÜäöñüàÉÆæß§¿¡£¥¤"},
		{"greek in table kept", "ΓΔΘΛΞΠΣΦΨΩ", "ΓΔΘΛΞΠΣΦΨΩ"},
		{"accents to base", "êâîôûëïÿçáíóúýãõÈÊÀÂÎÔÛÏŸ", "eaioueiycaiouyaoEEAAIOUIY"},
		{"central european", "Łódź Žižek Čapek Ő ű Ș ț", "Lodz Zizek Capek O u S t"},
		{"letters without decomposition", "Œuvre þing Đuro ħ ı ĸ", "OEuvre thing Duro h i k"},
		{"combining accent composes", "e\u0301 u\u0308 x\u0301", "é ü x"},
		{"smart quotes", "“double” ‘single’ „low“ «guillemets» ‹one›", `"double" 'single' "low" "guillemets" 'one'`},
		{"backtick and accent", "`code` it´s", "'code' it's"},
		{"dashes", "a–b—c‒d−e‐f‑g", "a-b-c-d-e-f-g"},
		{"ellipsis", "wait…", "wait..."},
		{"spaces", "a\u00a0b\u2009c\u202fd\u3000e\u2003f", "a b c d e f"},
		{"zero width dropped", "a\u200bb\u200dc\ufeffd\u00ade", "abcde"},
		{"bullets", "• one ◦ two · three", "- one - two - three"},
		{"arrows", "a → b ← c ↔ d ⇒ e ↑ ↓", "a -> b <- c <-> d => e up down"},
		{"symbols", "Foo™ © ® 25°C ±2 ≥ ≤ ≠ × ½ µs ∞", "Foo(TM) (C) (R) 25degC +/-2 >= <= != x 1/2 us inf"},
		{"ligatures and superscripts", "ﬁle m² ①", "file m2 1"},
		{"fullwidth", "ＡＢＣ１２３！", "ABC123!"},
		{"greek lower", "αβγδ ω", "ABΓΔ Ω"},
		{"checks", "✓ ok ✗ bad ⚠️ hot", "OK ok X bad ! hot"},
		{"emoji", "fire 🔥 ok 👍🏽 family 👨‍👩‍👧", "fire ? ok ? family ???"},
		{"cjk and hangul", "日本 한국", "?? ??"},
		{"cyrillic", "Привет", "??????"},
		{"controls", "a\x00b\x07c\x1bd\x7fe\u0085f", "abcde\nf"},
		{"newlines", "a\r\nb\rc\nd\fe\vf\u2028g", "a\nb\nc\nd\ne\nf\ng"},
		{"tab", "a\tb", "a b"},
		{"invalid utf8", "a\xffb\xc3", "a?b?"},
		{"replacement char", "a\ufffdb", "a?b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToGSM(tt.in)
			if got != tt.want {
				t.Errorf("ToGSM(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !IsGSM(got) {
				t.Errorf("ToGSM(%q) = %q is not GSM-7", tt.in, got)
			}
			if again := ToGSM(got); again != got {
				t.Errorf("ToGSM not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestSeptets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"é£Δ", 3},
		{"{}", 4},
		{"€5", 3},
		{"a\fb", 3}, // form feed becomes a line break
		{"a\r\nb", 3},
		{"™", 4}, // "(TM)"
		{"😀", 1}, // "?"
		{"[x]\n", 6},
	}
	for _, tt := range tests {
		if got := Septets(tt.in); got != tt.want {
			t.Errorf("Septets(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	a := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"one", "a", 1},
		{"full single", a(160), 1},
		{"just over", a(161), 2},
		{"full double", a(306), 2},
		{"just over double", a(307), 3},
		{"escapes fill single", strings.Repeat("{", 80), 1},
		{"escape over single", strings.Repeat("{", 80) + "a", 2},
		// 152 + 2 does not fit in 153: the pair moves whole to segment 2,
		// which then holds 2 + 152 = 154 > 153, so a third is needed.
		{"escape pair not split", a(152) + "{" + a(152), 3},
		{"escape pair fits exactly", a(151) + "{" + a(153), 2},
		{"extension euro", strings.Repeat("€", 77) + a(153), 3},
		{"unicode counted after ToGSM", strings.Repeat("…", 54), 2}, // 162 septets
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Segments(tt.in); got != tt.want {
				t.Errorf("Segments = %d, want %d (septets %d)", got, tt.want, Septets(tt.in))
			}
		})
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	words := strings.Repeat("alert fired ", 60) // 720 septets
	tests := []struct {
		name        string
		in          string
		maxSegments int
		want        string
	}{
		{"fits untouched", "short text", 1, "short text"},
		{"transliterated even when it fits", "“hi”", 1, `"hi"`},
		{"exact single", strings.Repeat("a", 160), 1, strings.Repeat("a", 160)},
		{"hard cut in long word", strings.Repeat("a", 161), 1, strings.Repeat("a", 157) + "..."},
		{"word boundary", strings.Repeat("a", 150) + " bbbbbbbbbbbbbbbbbbbb", 1, strings.Repeat("a", 150) + "..."},
		{"boundary too far back", strings.Repeat("a", 100) + " " + strings.Repeat("b", 100), 1, strings.Repeat("a", 100) + " " + strings.Repeat("b", 56) + "..."},
		{"cut right before a space", strings.Repeat("a", 157) + " tail text", 1, strings.Repeat("a", 157) + "..."},
		{"trailing spaces and newlines trimmed", strings.Repeat("a", 140) + " \n \n" + strings.Repeat("b", 30), 1, strings.Repeat("a", 140) + "..."},
		{"escape not split at end", strings.Repeat("a", 156) + "{{{{", 1, strings.Repeat("a", 156) + "..."},
		{"escape fits before dots", strings.Repeat("a", 155) + "{{{{", 1, strings.Repeat("a", 155) + "{..."},
		{"two segments", strings.Repeat("a", 400), 2, strings.Repeat("a", 303) + "..."},
		{"default budget", strings.Repeat("a", 500), 0, strings.Repeat("a", 456) + "..."},
		{"negative budget means default", strings.Repeat("a", 500), -1, strings.Repeat("a", 456) + "..."},
		{"words three segments", words, 3, strings.TrimSpace(words[:456-(456%12)]) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fit(tt.in, tt.maxSegments)
			if got != tt.want {
				t.Errorf("Fit = %q (%d septets), want %q (%d septets)", got, Septets(got), tt.want, Septets(tt.want))
			}
			budget := tt.maxSegments
			if budget <= 0 {
				budget = DefaultMaxSegments
			}
			if s := Segments(got); s > budget {
				t.Errorf("Fit gave %d segments, budget %d", s, budget)
			}
		})
	}
}

// TestFitHardCutIsLongest checks, for text without spaces and with escape
// characters in every position, that a hard cut keeps as much as the budget
// allows: one more rune would not fit.
func TestFitHardCutIsLongest(t *testing.T) {
	t.Parallel()
	for budget := 1; budget <= 4; budget++ {
		for offset := range 6 {
			in := strings.Repeat("a", offset) + strings.Repeat("ab{", 300)
			got := Fit(in, budget)
			head := strings.TrimSuffix(got, ellipsis)
			if head == got {
				t.Fatalf("budget %d offset %d: not cut", budget, offset)
			}
			if Segments(got) > budget {
				t.Fatalf("budget %d offset %d: %d segments", budget, offset, Segments(got))
			}
			next, _ := utf8.DecodeRuneInString(in[len(head):])
			if longer := head + string(next) + ellipsis; Segments(longer) <= budget {
				t.Errorf("budget %d offset %d: %q would also fit", budget, offset, longer)
			}
		}
	}
}

// TestSymbolReplacements pins every look-alike in the table.
func TestSymbolReplacements(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"‘’‚‛′‹›`´ʹʻʼʽˈ＇":    "'''''''''''''''",
		"“”„‟″«»¨＂":          `"""""""""`,
		"‐‑‒–—―−⁃﹘﹣－":        "-----------",
		"…":                  "...",
		"•‣◦∙·●▪∘⦁":          "---------",
		"⁄∕":                 "//",
		"→⟶➔➜➝➞➡⇾↦":          "->->->->->->->->->",
		"←⟵⬅⇽":               "<-<-<-<-",
		"↔⟷":                 "<-><->",
		"⇒⟹":                 "=>=>",
		"⇐⟸":                 "<=<=",
		"⇔⟺":                 "<=><=>",
		"↑⬆↓⬇":               "upupdowndown",
		"™©®°℃":              "(TM)(C)(R)degdegC",
		"×✕⨯÷±":              "xxx/+/-",
		"≤⩽≥⩾≠≈∼∞":           "<=<=>=>=!=~~inf",
		"µμ¢¦":               "uuc|",
		"∆∑∏":                "ΔΣΠ",
		"✓✔☑✗✘✖⚠":            "OKOKOKXXX!",
		"ŁłĐÐđðĦħı":          "LlDDddHhi",
		"ŒœÞþŦŧĸŊŋƒ":         "OEoeTHthTtkNnf",
		"ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ":     "ABEZHIKMNOPTYX",
		"αβεζηικνοπρστυφχψω": "ABEZHIKNOΠPΣTYΦXΨΩ",
	}
	for in, want := range tests {
		if got := ToGSM(in); got != want {
			t.Errorf("ToGSM(%q) = %q, want %q", in, got, want)
		}
	}
}
