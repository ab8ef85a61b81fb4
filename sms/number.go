package sms

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidNumber is wrapped by every error NormalizeNumber returns.
var ErrInvalidNumber = errors.New("invalid number")

// E.164 allows at most 15 digits. The shortest numbers in service (Niue,
// Tokelau) have 7 digits with the country code; anything shorter is a typo.
const (
	minDigits = 7
	maxDigits = 15
)

// NormalizeNumber checks that s has the shape of an E.164 number and returns
// it as "+" followed by digits. Spaces, dashes, dots, slashes and brackets are
// removed, and an international "00" prefix is read as "+". A number without
// "+" or "00" is refused: its country cannot be guessed.
//
// The check is of shape only (country code starting 1-9, 7 to 15 digits), not
// of each country's numbering plan. The provider rejects a number it cannot
// reach per number inside its reply, and a numbering-plan table that is out of
// date would refuse a valid on-call number, which is worse than a rejection.
// The error never contains the number unmasked.
func NormalizeNumber(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '/' || r == '(' || r == ')' ||
			r == '\u00a0' || r == '\t':
			// Separators people and spreadsheets put in numbers.
		default:
			return "", fmt.Errorf("%w %s: unexpected character %q", ErrInvalidNumber, MaskNumber(s), r)
		}
	}
	n := b.String()
	switch {
	case strings.HasPrefix(n, "+"):
		n = n[1:]
	case strings.HasPrefix(n, "00"):
		n = n[2:]
	default:
		return "", fmt.Errorf("%w %s: must start with + and the country code", ErrInvalidNumber, MaskNumber(s))
	}
	switch {
	case n == "":
		return "", fmt.Errorf("%w %s: no digits", ErrInvalidNumber, MaskNumber(s))
	case n[0] == '0':
		return "", fmt.Errorf("%w %s: country code cannot start with 0", ErrInvalidNumber, MaskNumber(s))
	case len(n) < minDigits:
		return "", fmt.Errorf("%w %s: %d digits, at least %d expected", ErrInvalidNumber, MaskNumber(s), len(n), minDigits)
	case len(n) > maxDigits:
		return "", fmt.Errorf("%w %s: %d digits, at most %d allowed", ErrInvalidNumber, MaskNumber(s), len(n), maxDigits)
	}
	return "+" + n, nil
}

// MaskNumber hides the middle of a number for logs and errors:
// "+27831234567" becomes "+2783****567". At least four digits are always
// hidden: a shorter number shows fewer of its ends ("+278****56" for ten
// digits), one of six digits or fewer none. Only digits and a leading "+"
// of s are kept, so whatever else a malformed input holds is never echoed.
func MaskNumber(s string) string {
	s = strings.TrimSpace(s)
	prefix := ""
	if strings.HasPrefix(s, "+") {
		prefix = "+"
	}
	var d []byte
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			d = append(d, s[i])
		}
	}
	lead, trail := 0, 0
	switch {
	case len(d) >= 11:
		lead, trail = 4, 3
	case len(d) >= 9:
		lead, trail = 3, 2
	case len(d) == 8:
		lead, trail = 2, 2
	case len(d) == 7:
		lead, trail = 2, 1
	}
	if lead == 0 {
		return prefix + "****"
	}
	return prefix + string(d[:lead]) + "****" + string(d[len(d)-trail:])
}
