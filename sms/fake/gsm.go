package fake

import "strings"

// The GSM 03.38 default alphabet (without the escape code) and the
// characters of its extension table, which take two septets each. The fake
// keeps its own copy so that it depends on nothing in the project: a bug in
// the project's GSM handling must not hide in the fake as well.
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

// Septets counts the GSM-7 septets of text. ok is false if text has a
// character outside GSM-7; such a character is counted as one septet.
func Septets(text string) (n int, ok bool) {
	ok = true
	for _, r := range text {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			n++
		case strings.ContainsRune(gsmExtension, r):
			n += 2
		default:
			n++
			ok = false
		}
	}
	return n, ok
}

// Segments is the number of SMS segments, and so of credits per recipient,
// the provider charges for text: one up to 160 septets, otherwise one per
// 153 (the rest of each segment carries the concatenation header).
func Segments(text string) int {
	n, _ := Septets(text)
	if n <= 160 {
		return 1
	}
	return (n + 152) / 153
}
