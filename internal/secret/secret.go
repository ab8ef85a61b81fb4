// Package secret holds configuration values that must never be printed: API
// keys, webhook tokens, HMAC keys and passwords.
//
// A Secret is a plain string underneath, so code that needs the value converts
// it explicitly (string(s)), which makes every use easy to find. Everything that
// renders a value for humans or machines — fmt, slog, YAML, JSON, text
// marshalling — sees only the mask "<secret>".
//
// One limit: fmt cannot call methods on unexported struct fields, so a struct
// printed with %v that keeps a Secret in an unexported field shows the plain
// value. Such structs need their own String or Format method.
package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Mask is what a non-empty Secret prints and marshals as.
const Mask = "<secret>"

// MaxFileSize bounds what Load reads from a secret file, so that pointing
// *_file at a large file or a device by mistake fails fast instead of hanging
// or filling memory.
const MaxFileSize = 64 << 10

// ErrBothSet is returned by Load when an inline value and a file are both given.
var ErrBothSet = errors.New("both an inline secret and a secret file given; use one")

// ErrNotSet is returned by Load when neither an inline value nor a file is given.
var ErrNotSet = errors.New("no secret given")

// ErrPlaceholder is wrapped by Load's error for a value that is an
// example's placeholder ("REPLACE-WITH-THE-SMS-API-KEY"): a manifest
// applied as it was copied must not start a bridge that cannot page.
var ErrPlaceholder = errors.New(`holds a placeholder (it starts with "REPLACE"), not a real value`)

// placeholder reports whether v is written like the examples'
// placeholders: REPLACE, or REPLACE- or REPLACE_ and more.
func placeholder(v string) bool {
	v = strings.TrimSpace(v)
	return v == "REPLACE" || strings.HasPrefix(v, "REPLACE-") || strings.HasPrefix(v, "REPLACE_")
}

// Secret is a string that never prints. The empty Secret prints as the empty
// string, so that an unset value is visibly unset in a dumped configuration.
type Secret string

// String returns Mask, or "" for the empty Secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Mask
}

// GoString returns the same as String, so %#v does not reveal the value.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter. It takes precedence over String and
// GoString for every verb, so %s, %q, %x, %v, %+v and %#v all print the mask,
// including when the Secret is a field of a printed struct.
func (s Secret) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, s.String())
}

// LogValue implements slog.LogValuer, so slog.Any("key", s) logs the mask with
// every handler.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler and reads the plain value. Errors
// give the line but never the content. The literal mask is refused: it only
// appears when a printed configuration was pasted back, and the real value is
// then lost.
func (s *Secret) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: secret must be a string", value.Line)
	}
	var str string
	if err := value.Decode(&str); err != nil {
		// yaml.v3's decode errors quote the offending value; drop them.
		return fmt.Errorf("line %d: secret cannot be decoded as a string", value.Line)
	}
	if str == Mask {
		return fmt.Errorf("line %d: secret is the mask %q, not a real value; the configuration was copied from masked output", value.Line, Mask)
	}
	*s = Secret(str)
	return nil
}

// Load returns the secret from exactly one of an inline value and a file. A
// file's trailing line breaks are trimmed, since editors and `echo` add them
// and no one means them as part of a token. A placeholder left from an
// example is refused (ErrPlaceholder). Errors name the file but never
// contain its content. ErrBothSet and ErrNotSet let callers name their own
// config fields.
func Load(inline Secret, file string) (Secret, error) {
	switch {
	case inline != "" && file != "":
		return "", ErrBothSet
	case inline != "" && placeholder(string(inline)):
		return "", fmt.Errorf("inline secret %w", ErrPlaceholder)
	case inline != "":
		return inline, nil
	case file == "":
		return "", ErrNotSet
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	if len(data) > MaxFileSize {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", file, MaxFileSize)
	}
	value := strings.TrimRight(string(data), "\r\n")
	if value == "" {
		return "", fmt.Errorf("secret file %s is empty", file)
	}
	if placeholder(value) {
		return "", fmt.Errorf("secret file %s %w: put the real secret in it", file, ErrPlaceholder)
	}
	return Secret(value), nil
}
