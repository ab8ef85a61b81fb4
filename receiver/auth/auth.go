// Package auth authenticates inbound webhook requests: the Alertmanager
// endpoint and every generic webhook source share one Config shape and one
// Verifier.
//
// Build validates a Config and reads its secret files once, so a broken
// config fails at load or reload, never per request. Check then decides each
// request and, when it refuses, says why with one of a small fixed set of
// reasons that are safe to use as metric labels. Neither configuration errors
// nor refusals ever contain a secret or a credential a client sent.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/internal/secret"
)

// Scheme names, the values of Config.Type.
const (
	TypeBearer           = "bearer"
	TypeBasic            = "basic"
	TypeToken            = "token"
	TypeHMACSHA256       = "hmac-sha256"
	TypeStandardWebhooks = "standard-webhooks"
)

// Types lists every scheme in the order error messages name them.
var Types = []string{TypeBearer, TypeBasic, TypeToken, TypeHMACSHA256, TypeStandardWebhooks}

// Reasons a request is refused. They are the only values Failure.Reason takes.
const (
	// ReasonMissing: the credential or signature header is absent or empty.
	ReasonMissing = "missing"
	// ReasonMalformed: a credential is present but cannot be parsed.
	ReasonMalformed = "malformed"
	// ReasonMismatch: a well-formed credential or signature is wrong.
	ReasonMismatch = "mismatch"
	// ReasonExpired: a correctly signed Standard Webhooks message whose
	// timestamp lies outside the tolerance, in either direction.
	ReasonExpired = "expired"
)

// Reasons lists every Failure.Reason, for pre-creating metric label
// combinations at zero. A replay within the tolerance is no failure of
// authentication: the intake answers it as a duplicate by its webhook-id,
// which the store remembers (see DeliveryID).
var Reasons = []string{ReasonMissing, ReasonMalformed, ReasonMismatch, ReasonExpired}

// Defaults applied by Build.
const (
	// DefaultHMACHeader is GitHub's header. With it, named or defaulted, the
	// prefix defaults to DefaultHMACPrefix, so `type: hmac-sha256` alone fits
	// GitHub.
	DefaultHMACHeader = "X-Hub-Signature-256"
	DefaultHMACPrefix = "sha256="
	// DefaultTolerance is the Standard Webhooks timestamp tolerance.
	DefaultTolerance = 5 * time.Minute
)

// Standard Webhooks header names and the secret prefix (spec v1.0.0).
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
	whsecPrefix            = "whsec_"
)

// Config is the `auth:` block under `alertmanager:` and each `webhooks[]`
// entry. Secret and Password print and marshal as "<secret>".
type Config struct {
	// Type is one of Types.
	Type string `yaml:"type"`
	// Header names the header carrying the token (type token, required) or the
	// signature (type hmac-sha256, default DefaultHMACHeader). Matched
	// case-insensitively.
	Header string `yaml:"header"`
	// Prefix precedes the hex signature (type hmac-sha256), e.g. "sha256=";
	// matched case-insensitively. Defaults to DefaultHMACPrefix when the
	// header is DefaultHMACHeader, otherwise to none (Gitea, Forgejo).
	Prefix string `yaml:"prefix"`
	// Username and Password (or PasswordFile) are for type basic.
	Username     string        `yaml:"username"`
	Password     secret.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	// Secret or SecretFile: the token (bearer, token) or the HMAC key
	// (hmac-sha256, standard-webhooks). For standard-webhooks a value starting
	// with "whsec_" is base64 after the prefix, as the spec serialises keys;
	// any other value is used as the key bytes as written.
	Secret     secret.Secret `yaml:"secret"`
	SecretFile string        `yaml:"secret_file"`
	// Tolerance is how far a Standard Webhooks timestamp may lie from the
	// receiver's clock, in either direction (default DefaultTolerance).
	Tolerance time.Duration `yaml:"tolerance"`
}

// Verifier checks requests against one built Config. It is safe for
// concurrent use and never prints its keys.
type Verifier struct {
	typ string
	// digest and userDigest hold SHA-256 digests of the expected token,
	// password and username: comparing fixed-size digests in constant time
	// does not reveal the expected length, as comparing raw values would.
	digest     [sha256.Size]byte
	userDigest [sha256.Size]byte
	header     string
	prefix     string
	key        []byte
	tolerance  time.Duration
}

// Failure is the error Check returns for a refused request. Detail is built
// from fixed text and configured header names only, never from header values.
type Failure struct {
	Reason string
	Detail string
}

func (f *Failure) Error() string { return "auth: " + f.Detail }

func fail(reason, format string, args ...any) *Failure {
	return &Failure{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Build validates c, reads its secret files and returns a Verifier. Errors are
// *ConfigError: prefixed "auth: ", naming the offending field, and never
// containing a secret.
func (c *Config) Build() (*Verifier, error) {
	v := &Verifier{typ: c.Type}
	unused := map[string]bool{
		"header":        c.Header != "",
		"prefix":        c.Prefix != "",
		"username":      c.Username != "",
		"password":      c.Password != "",
		"password_file": c.PasswordFile != "",
		"secret":        c.Secret != "",
		"secret_file":   c.SecretFile != "",
		"tolerance":     c.Tolerance != 0,
	}
	var err error
	switch c.Type {
	case "":
		return nil, configErrorf("type", "type missing; want one of %s", strings.Join(Types, ", "))
	case TypeBearer:
		err = c.buildToken(v, unused)
	case TypeToken:
		if c.Header == "" {
			return nil, configErrorf("header", "header required for type token")
		}
		err = c.buildToken(v, unused)
	case TypeBasic:
		err = c.buildBasic(v, unused)
	case TypeHMACSHA256:
		err = c.buildHMAC(v, unused)
	case TypeStandardWebhooks:
		err = c.buildStandard(v, unused)
	default:
		return nil, configErrorf("type", "type %q unknown; want one of %s", c.Type, strings.Join(Types, ", "))
	}
	if err != nil {
		return nil, err
	}
	// Stray fields are usually a mistake (a token under password, a prefix
	// for a scheme that has none) that would otherwise be silently ignored.
	for _, field := range []string{"header", "prefix", "username", "password", "password_file", "secret", "secret_file", "tolerance"} {
		if unused[field] {
			return nil, configErrorf(field, "%s is not used by type %s", field, c.Type)
		}
	}
	return v, nil
}

func (c *Config) buildToken(v *Verifier, unused map[string]bool) error {
	if c.Type == TypeToken {
		if err := v.setHeader(c.Header); err != nil {
			return err
		}
		unused["header"] = false
	}
	s, err := c.loadSecret(unused)
	if err != nil {
		return err
	}
	v.digest = sha256.Sum256([]byte(s))
	return nil
}

func (c *Config) buildBasic(v *Verifier, unused map[string]bool) error {
	if c.Username == "" {
		return configErrorf("username", "username required for type basic")
	}
	// RFC 7617: the first colon separates user-id and password.
	if strings.Contains(c.Username, ":") {
		return configErrorf("username", "username must not contain a colon")
	}
	p, err := secret.Load(c.Password, c.PasswordFile)
	if err != nil {
		return fieldError("password", err)
	}
	unused["username"], unused["password"], unused["password_file"] = false, false, false
	v.userDigest = sha256.Sum256([]byte(c.Username))
	v.digest = sha256.Sum256([]byte(p))
	return nil
}

func (c *Config) buildHMAC(v *Verifier, unused map[string]bool) error {
	header := c.Header
	if header == "" {
		header = DefaultHMACHeader
	}
	if err := v.setHeader(header); err != nil {
		return err
	}
	// GitHub always prefixes this header's value, so a missing prefix here
	// is an omission, not a request for bare hex.
	v.prefix = c.Prefix
	if v.prefix == "" && v.header == DefaultHMACHeader {
		v.prefix = DefaultHMACPrefix
	}
	unused["header"], unused["prefix"] = false, false
	s, err := c.loadSecret(unused)
	if err != nil {
		return err
	}
	v.key = []byte(s)
	return nil
}

func (c *Config) buildStandard(v *Verifier, unused map[string]bool) error {
	v.tolerance = c.Tolerance
	if v.tolerance == 0 {
		v.tolerance = DefaultTolerance
	}
	if v.tolerance < 0 {
		return configErrorf("tolerance", "tolerance %s must be positive", c.Tolerance)
	}
	unused["tolerance"] = false
	s, err := c.loadSecret(unused)
	if err != nil {
		return err
	}
	key, err := standardKey(string(s))
	if err != nil {
		return err
	}
	v.key = key
	return nil
}

// standardKey turns a configured Standard Webhooks secret into HMAC key bytes.
// The spec serialises symmetric keys as "whsec_" + base64; such a value is
// decoded (with or without padding). A value without the prefix is taken as
// the raw key, for senders that let users type their own shared secret.
func standardKey(s string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(s, whsecPrefix)
	if !ok {
		return []byte(s), nil
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(encoded)
	}
	if err != nil {
		// The decoder's error gives a byte offset into the secret; leave it out.
		return nil, configErrorf("secret", "secret starts with whsec_ but the rest is not valid base64")
	}
	if len(key) == 0 {
		return nil, configErrorf("secret", "secret is empty after the whsec_ prefix")
	}
	return key, nil
}

func (c *Config) loadSecret(unused map[string]bool) (secret.Secret, error) {
	unused["secret"], unused["secret_file"] = false, false
	s, err := secret.Load(c.Secret, c.SecretFile)
	if err != nil {
		return "", fieldError("secret", err)
	}
	return s, nil
}

// fieldError words secret.Load's errors in terms of the config fields.
func fieldError(field string, err error) error {
	switch {
	case errors.Is(err, secret.ErrBothSet):
		return configErrorf(field, "%s and %s_file both set; use one", field, field)
	case errors.Is(err, secret.ErrNotSet):
		return configErrorf(field, "%s or %s_file required", field, field)
	}
	return configErrorf(field+"_file", "%s_file: %w", field, err)
}

// ConfigError is every error of Build. Field names the key of Config it
// concerns ("type", "secret_file", ...), so that a configuration error can
// point at that key's line; the message begins "auth: " and never contains
// a secret.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "auth: " + e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

func (v *Verifier) setHeader(name string) error {
	if !validHeaderName(name) {
		return configErrorf("header", "header %q is not a valid header name", name)
	}
	v.header = http.CanonicalHeaderKey(name)
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// NeedsBody reports whether Check needs the raw request body. For the other
// schemes the caller can, and should, check before reading the body.
func (v *Verifier) NeedsBody() bool {
	return v.typ == TypeHMACSHA256 || v.typ == TypeStandardWebhooks
}

// String describes the Verifier without its keys.
func (v Verifier) String() string { return "auth.Verifier{type: " + v.typ + "}" }

// GoString is String, so %#v does not dump the keys.
func (v Verifier) GoString() string { return v.String() }

// Format implements fmt.Formatter so that every verb, %d and %x included,
// prints String rather than the key bytes; without it %d would bypass String.
func (v Verifier) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, v.String()) }

// Check authenticates one request: h its headers, body its raw body (only
// read when NeedsBody), now the receiver's clock. It returns nil or a
// *Failure.
func (v *Verifier) Check(h http.Header, body []byte, now time.Time) error {
	switch v.typ {
	case TypeBearer:
		return v.checkBearer(h)
	case TypeBasic:
		return v.checkBasic(h)
	case TypeToken:
		return v.checkToken(h)
	case TypeHMACSHA256:
		return v.checkHMAC(h, body)
	case TypeStandardWebhooks:
		return v.checkStandard(h, body, now)
	}
	// Only a zero Verifier, not one from Build, gets here: refuse.
	return fail(ReasonMismatch, "verifier not built")
}

// equalDigest compares a presented credential with a stored digest in
// constant time.
func equalDigest(want [sha256.Size]byte, got string) int {
	d := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], d[:])
}

func (v *Verifier) checkBearer(h http.Header) error {
	value := h.Get("Authorization")
	if value == "" {
		return fail(ReasonMissing, "header Authorization missing")
	}
	// RFC 9110: the scheme is case-insensitive.
	scheme, token, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return fail(ReasonMalformed, "header Authorization is not a Bearer credential")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return fail(ReasonMalformed, "header Authorization has an empty Bearer token")
	}
	if equalDigest(v.digest, token) != 1 {
		return fail(ReasonMismatch, "bearer token does not match")
	}
	return nil
}

func (v *Verifier) checkBasic(h http.Header) error {
	if h.Get("Authorization") == "" {
		return fail(ReasonMissing, "header Authorization missing")
	}
	user, pass, ok := (&http.Request{Header: h}).BasicAuth()
	if !ok {
		return fail(ReasonMalformed, "header Authorization is not a valid Basic credential")
	}
	// Both compared every time, so timing does not tell which was wrong.
	if equalDigest(v.userDigest, user)&equalDigest(v.digest, pass) != 1 {
		return fail(ReasonMismatch, "basic auth username or password does not match")
	}
	return nil
}

func (v *Verifier) checkToken(h http.Header) error {
	value := h.Get(v.header)
	if value == "" {
		return fail(ReasonMissing, "header %s missing", v.header)
	}
	if equalDigest(v.digest, value) != 1 {
		return fail(ReasonMismatch, "header %s does not match", v.header)
	}
	return nil
}

func (v *Verifier) checkHMAC(h http.Header, body []byte) error {
	value := h.Get(v.header)
	if value == "" {
		return fail(ReasonMissing, "header %s missing", v.header)
	}
	if v.prefix != "" {
		if len(value) < len(v.prefix) || !strings.EqualFold(value[:len(v.prefix)], v.prefix) {
			return fail(ReasonMalformed, "header %s lacks the prefix %q", v.header, v.prefix)
		}
		value = value[len(v.prefix):]
	}
	// hex.DecodeString accepts either case, as senders differ.
	got, err := hex.DecodeString(value)
	if err != nil || len(got) != sha256.Size {
		return fail(ReasonMalformed, "header %s is not a hex SHA-256 signature", v.header)
	}
	mac := hmac.New(sha256.New, v.key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return fail(ReasonMismatch, "header %s signature does not match the body", v.header)
	}
	return nil
}

func (v *Verifier) checkStandard(h http.Header, body []byte, now time.Time) error {
	id := h.Get(HeaderWebhookID)
	ts := h.Get(HeaderWebhookTimestamp)
	sigs := h.Values(HeaderWebhookSignature)
	for _, name := range []string{HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature} {
		if h.Get(name) == "" {
			return fail(ReasonMissing, "header %s missing", name)
		}
	}
	// The spec forbids dots in the id: with one, a signature over
	// "id.ts.body" could be re-read with a different split. The timestamp
	// must be plain digits for the same reason, and is signed as received.
	if strings.Contains(id, ".") {
		return fail(ReasonMalformed, "header %s contains a dot", HeaderWebhookID)
	}
	if !allDigits(ts) {
		return fail(ReasonMalformed, "header %s is not a Unix timestamp in seconds", HeaderWebhookTimestamp)
	}
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fail(ReasonMalformed, "header %s is not a Unix timestamp in seconds", HeaderWebhookTimestamp)
	}

	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)

	// A space-separated list, possibly over several header lines; any one
	// valid v1 signature suffices (key rotation). Other versions, such as
	// the asymmetric v1a, are skipped.
	candidates, matched := 0, false
	for _, line := range sigs {
		for _, entry := range strings.Fields(line) {
			version, encoded, ok := strings.Cut(entry, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(encoded)
			if err != nil {
				continue
			}
			candidates++
			// No early exit, so timing does not tell which entry matched.
			if hmac.Equal(want, got) {
				matched = true
			}
		}
	}
	if candidates == 0 {
		return fail(ReasonMalformed, "header %s has no v1 signature", HeaderWebhookSignature)
	}
	if !matched {
		return fail(ReasonMismatch, "header %s has no signature matching the body", HeaderWebhookSignature)
	}

	// Checked after the signature so that "expired" means a genuine but
	// stale message (a clock or queue problem at the sender), not a forgery.
	sentAt := time.Unix(sent, 0)
	if d := now.Sub(sentAt); d > v.tolerance || d < -v.tolerance {
		return fail(ReasonExpired, "header %s is %s away from the receiver's clock; tolerance %s",
			HeaderWebhookTimestamp, d.Round(time.Second), v.tolerance)
	}
	return nil
}

// DeliveryID returns the Standard Webhooks message id of a request that
// passed Check, and when a replay of that request stops passing Check
// (its signed timestamp plus the tolerance): remembering the id until
// then, as the intake does in the store, refuses every replay. ok is
// false for the other schemes, whose delivery ids (if any) are not
// signed.
func (v *Verifier) DeliveryID(h http.Header) (id string, expires time.Time, ok bool) {
	if v.typ != TypeStandardWebhooks {
		return "", time.Time{}, false
	}
	id, ts := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp)
	sent, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || !allDigits(ts) || err != nil {
		return "", time.Time{}, false
	}
	return id, time.Unix(sent, 0).Add(v.tolerance), true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
