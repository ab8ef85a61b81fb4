package templates

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The provider accepts GSM 03.38 (3GPP TS 23.038) text only. These limits are
// the standard ones for the 7-bit default alphabet: a message of up to 160
// septets travels in one segment; a longer one is split into segments of 153
// septets each, because the concatenation header takes the other seven.
const (
	// SingleSegmentSeptets is the room in a message that is not split.
	SingleSegmentSeptets = 160
	// MultiSegmentSeptets is the room in each segment of a split message.
	MultiSegmentSeptets = 153
	// DefaultMaxSegments is the budget used when none (0 or less) is given.
	DefaultMaxSegments = 3
)

// ellipsis marks a text that Fit had to cut; three full stops, because the
// one-rune ellipsis is not in the GSM alphabet.
const ellipsis = "..."

// fitWordWindow is how many runes Fit will give up to end on a word
// boundary rather than in the middle of a word.
const fitWordWindow = 15

// asciiWidths holds septetWidth for the ASCII range, one digit per code
// point: controls other than LF and CR and the backtick (0x60 of the basic
// table is '¿') take 0; form feed and ^ { } \ [ ~ ] | take 2.
const asciiWidths = "00000000001021000000000000000000" +
	"11111111111111111111111111111111" +
	"11111111111111111111111111122221" +
	"01111111111111111111111111122220"

// septetWidth returns how many septets r takes in the GSM 03.38 default
// alphabet: 1 for the basic table, 2 for the extension table (escape + code),
// 0 when r cannot be sent at all.
func septetWidth(r rune) int {
	if r >= 0 && r < utf8.RuneSelf {
		return int(asciiWidths[r] - '0')
	}
	switch r {
	case '£', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', 'Ø', 'ø', 'Å', 'å',
		'Δ', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ',
		'Æ', 'æ', 'ß', 'É', '¤', '¡', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
		'¿', 'ä', 'ö', 'ñ', 'ü', 'à':
		return 1
	case '€':
		return 2
	}
	return 0
}

// IsGSM reports whether every rune of s can be encoded in the GSM 03.38
// default alphabet (basic or extension table).
func IsGSM(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || septetWidth(r) == 0 {
			return false
		}
		i += size
	}
	return true
}

// isCanonicalGSM reports whether ToGSM would return s unchanged: every rune is
// encodable and none is one ToGSM rewrites (carriage return, form feed).
func isCanonicalGSM(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '\r' || c == '\f' || septetWidth(rune(c)) == 0 {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if septetWidth(r) == 0 {
			return false
		}
		i += size
	}
	return true
}

// ToGSM returns s rewritten into the GSM 03.38 alphabet, so that every rune of
// the result can be sent. Letters with diacritics that the alphabet has
// (é, ü, Å, Ñ, ...) are kept; others lose their marks (ê -> e, ł -> l); smart
// quotes, dashes, the ellipsis, unusual spaces, bullets, arrows and a few
// common symbols become their ASCII look-alikes; "\r\n" and "\r" become "\n",
// tabs a space; other control and formatting characters are dropped; anything
// else (emoji, CJK, ...) becomes '?'. ToGSM(ToGSM(s)) == ToGSM(s).
//
// Decomposition uses golang.org/x/text/unicode/norm (NFC first, so that a
// letter followed by a combining accent is judged as the composed letter, then
// NFKD per rune for what the alphabet lacks).
func ToGSM(s string) string {
	if isCanonicalGSM(s) {
		return s
	}
	s = norm.NFC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte('?')
		case r == '\r':
			b.WriteByte('\n')
			if i < len(s) && s[i] == '\n' {
				i++
			}
		case r == '\f':
			// A page break means nothing on a phone; a line break is the
			// nearest thing and costs one septet instead of two.
			b.WriteByte('\n')
		case septetWidth(r) > 0:
			b.WriteRune(r)
		default:
			b.WriteString(transliterate(r))
		}
	}
	return b.String()
}

// transliterate returns the GSM replacement for a rune that is not in the
// alphabet: a look-alike, its base letter, nothing, or "?".
func transliterate(r rune) string {
	if s, ok := simpleReplacement(r); ok {
		return s
	}
	d := norm.NFKD.String(string(r))
	if d == string(r) {
		return "?"
	}
	// Accept the decomposition only if all of it can be sent: a Hangul
	// syllable decomposes into jamo, and one '?' reads better than three.
	var b strings.Builder
	for _, x := range d {
		switch {
		case isMark(x):
			continue
		case septetWidth(x) > 0:
			b.WriteRune(x)
		default:
			s, ok := simpleReplacement(x)
			if !ok {
				return "?"
			}
			b.WriteString(s)
		}
	}
	if b.Len() == 0 {
		return "?"
	}
	return b.String()
}

// isMark reports whether r is a combining mark that ToGSM drops.
func isMark(r rune) bool {
	return unicode.In(r, unicode.Mn, unicode.Me)
}

// simpleReplacement maps one rune outside the alphabet that needs no
// decomposition. ok is false when it knows no replacement.
func simpleReplacement(r rune) (string, bool) {
	if s, ok := symbolReplacement(r); ok {
		return s, true
	}
	switch {
	case r == '\t':
		return " ", true
	case r == '\v' || r == 0x85 || r == 0x2028 || r == 0x2029:
		return "\n", true
	case unicode.Is(unicode.Zs, r):
		return " ", true
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r), isMark(r):
		// Controls, zero-width and bidi formatting characters, variation
		// selectors and combining marks carry nothing a reader would miss.
		return "", true
	case r >= 0x1F3FB && r <= 0x1F3FF:
		// Emoji skin-tone modifiers: the emoji itself already became '?'.
		return "", true
	case unicode.Is(unicode.Greek, r):
		if u := unicode.ToUpper(r); u != r {
			if septetWidth(u) > 0 {
				return string(u), true
			}
			if s, ok := symbolReplacement(u); ok {
				return s, true
			}
		}
	}
	return "", false
}

// symbolReplacement is the table of look-alikes.
func symbolReplacement(r rune) (string, bool) {
	switch r {
	// Quotes and apostrophes.
	case '‘', '’', '‚', '‛', '′', '‹', '›', '`', '´', 'ʹ', 'ʻ', 'ʼ', 'ʽ', 'ˈ', '＇':
		return "'", true
	case '“', '”', '„', '‟', '″', '«', '»', '¨', '＂':
		return `"`, true
	// Dashes and hyphens.
	case '‐', '‑', '‒', '–', '—', '―', '−', '⁃', '﹘', '﹣', '－':
		return "-", true
	case '…':
		return ellipsis, true
	// Bullets and separators.
	case '•', '‣', '◦', '∙', '·', '●', '▪', '∘', '⦁':
		return "-", true
	case '⁄', '∕':
		return "/", true
	// Arrows.
	case '→', '⟶', '➔', '➜', '➝', '➞', '➡', '⇾', '↦':
		return "->", true
	case '←', '⟵', '⬅', '⇽':
		return "<-", true
	case '↔', '⟷':
		return "<->", true
	case '⇒', '⟹':
		return "=>", true
	case '⇐', '⟸':
		return "<=", true
	case '⇔', '⟺':
		return "<=>", true
	case '↑', '⬆':
		return "up", true
	case '↓', '⬇':
		return "down", true
	// Symbols.
	case '™':
		return "(TM)", true
	case '©':
		return "(C)", true
	case '®':
		return "(R)", true
	case '°':
		return "deg", true
	case '℃':
		return "degC", true
	case '×', '✕', '⨯':
		return "x", true
	case '÷':
		return "/", true
	case '±':
		return "+/-", true
	case '≤', '⩽':
		return "<=", true
	case '≥', '⩾':
		return ">=", true
	case '≠':
		return "!=", true
	case '≈', '∼':
		return "~", true
	case '∞':
		return "inf", true
	case 'µ', 'μ':
		// Micro: "300µs" reads as "300us" in every log line.
		return "u", true
	case '¢':
		return "c", true
	case '¦':
		return "|", true
	case '∆':
		return "Δ", true
	case '∑':
		return "Σ", true
	case '∏':
		return "Π", true
	case '✓', '✔', '☑':
		return "OK", true
	case '✗', '✘', '✖':
		return "X", true
	case '⚠':
		return "!", true
	// Letters that Unicode does not decompose.
	case 'Ł':
		return "L", true
	case 'ł':
		return "l", true
	case 'Đ', 'Ð':
		return "D", true
	case 'đ', 'ð':
		return "d", true
	case 'Ħ':
		return "H", true
	case 'ħ':
		return "h", true
	case 'ı':
		return "i", true
	case 'Œ':
		return "OE", true
	case 'œ':
		return "oe", true
	case 'Þ':
		return "TH", true
	case 'þ':
		return "th", true
	case 'Ŧ':
		return "T", true
	case 'ŧ':
		return "t", true
	case 'ĸ':
		return "k", true
	case 'Ŋ':
		return "N", true
	case 'ŋ':
		return "n", true
	case 'ƒ':
		return "f", true
	// Greek capitals that look like Latin ones (the others are in the
	// alphabet itself).
	case 'Α':
		return "A", true
	case 'Β':
		return "B", true
	case 'Ε':
		return "E", true
	case 'Ζ':
		return "Z", true
	case 'Η':
		return "H", true
	case 'Ι':
		return "I", true
	case 'Κ':
		return "K", true
	case 'Μ':
		return "M", true
	case 'Ν':
		return "N", true
	case 'Ο':
		return "O", true
	case 'Ρ':
		return "P", true
	case 'Τ':
		return "T", true
	case 'Υ':
		return "Y", true
	case 'Χ':
		return "X", true
	}
	return "", false
}

// Septets returns the number of septets s takes once ToGSM has made it
// sendable: 1 for each rune of the basic table, 2 for each of the extension
// table (^ { } \ [ ~ ] | € and form feed), which travel as an escape and a code.
// Septets(s) == Septets(ToGSM(s)).
func Septets(s string) int {
	septets, _ := measure(ToGSM(s))
	return septets
}

// Segments returns the number of SMS segments s is billed as, once ToGSM has
// made it sendable: 0 for the empty text, 1 up to 160 septets, otherwise one
// per 153 septets, where an escape pair that does not fit at the end of a
// segment moves whole to the next one.
func Segments(s string) int {
	_, segments := measure(ToGSM(s))
	return segments
}

// measure counts the septets and segments of the GSM text g in one pass.
func measure(g string) (septets, segments int) {
	// split counts segments as if the text were split, which it is only
	// when it exceeds one segment.
	split, used := 1, 0
	for i := 0; i < len(g); {
		var w int
		if c := g[i]; c < utf8.RuneSelf {
			w = int(asciiWidths[c] - '0')
			i++
		} else {
			r, size := utf8.DecodeRuneInString(g[i:])
			w = septetWidth(r)
			i += size
		}
		septets += w
		if used+w > MultiSegmentSeptets {
			split++
			used = 0
		}
		used += w
	}
	switch {
	case septets == 0:
		return 0, 0
	case septets <= SingleSegmentSeptets:
		return septets, 1
	}
	return septets, split
}

// Fit returns ToGSM(s), cut so that it takes at most maxSegments segments
// (DefaultMaxSegments when maxSegments <= 0). A cut text ends with "...";
// the cut falls on a word boundary when there is one within the last few
// runes, otherwise inside the word.
func Fit(s string, maxSegments int) string {
	if maxSegments <= 0 {
		maxSegments = DefaultMaxSegments
	}
	s = ToGSM(s)
	if _, segments := measure(s); segments <= maxSegments {
		return s
	}
	cut := onBoundary(s, fitPrefix(s, maxSegments, len(ellipsis)))
	head := strings.TrimRight(s[:cut], " \n")
	return head + ellipsis
}

// onBoundary moves cut back to a word boundary, but only if that costs a
// few runes: a long word (a URL, a hash) is better cut than dropped.
func onBoundary(s string, cut int) int {
	runes := 0
	if cut < len(s) && (s[cut] == ' ' || s[cut] == '\n') {
		runes = fitWordWindow + 1 // already on a boundary
	}
	for i := cut; i > 0 && runes <= fitWordWindow; {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		if r == ' ' || r == '\n' {
			return i - size
		}
		i -= size
		runes++
	}
	return cut
}

// FitSuffix returns ToGSM(s) followed by ToGSM(suffix), in at most
// maxSegments segments (DefaultMaxSegments when maxSegments <= 0): when
// they do not fit, s is cut as Fit cuts it (ending in "...") and suffix
// kept whole. A suffix that does not fit on its own is cut with the rest.
func FitSuffix(s, suffix string, maxSegments int) string {
	if maxSegments <= 0 {
		maxSegments = DefaultMaxSegments
	}
	s, suffix = ToGSM(s), ToGSM(suffix)
	if _, segments := measure(s + suffix); segments <= maxSegments {
		return s + suffix
	}
	if _, segments := measure(ellipsis + suffix); segments > maxSegments {
		return Fit(s+suffix, maxSegments)
	}
	reserve, _ := measure(ellipsis + suffix)
	cut := onBoundary(s, fitPrefix(s, maxSegments, reserve))
	for {
		head := strings.TrimRight(s[:cut], " \n") + ellipsis
		// The reserve counts septets; an escape pair pushed whole into the
		// next segment can cost one more, so check and step back.
		if _, segments := measure(head + suffix); segments <= maxSegments || cut == 0 {
			return head + suffix
		}
		_, size := utf8.DecodeLastRuneInString(s[:cut])
		cut -= size
	}
}

// fitPrefix returns the byte length of the longest prefix of the GSM text s
// that, followed by reserve single-septet runes, fits in maxSegments.
func fitPrefix(s string, maxSegments, reserve int) int {
	if maxSegments == 1 {
		used := 0
		for i, r := range s {
			w := septetWidth(r)
			if used+w+reserve > SingleSegmentSeptets {
				return i
			}
			used += w
		}
		return len(s)
	}
	segments, used := 1, 0
	for i, r := range s {
		w := septetWidth(r)
		if used+w > MultiSegmentSeptets {
			segments++
			used = 0
		}
		used += w
		// The reserve must still fit after this rune: in this segment, or
		// in a further one that the budget allows.
		if segments > maxSegments || (segments == maxSegments && used+reserve > MultiSegmentSeptets) {
			return i
		}
	}
	return len(s)
}
