// Package config is smsbridge's YAML configuration: the schema, strict
// loading with line numbers, the defaults (all of them, applied once, here)
// and validation. It builds nothing that runs: package generation compiles a
// loaded File into the router, renderer, intake sources and provider
// accounts, and reports its errors through the same *Error, with the line
// of the key they concern (File.Line, File.Errorf).
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
	"github.com/smsbridge/smsbridge/routing"
)

// Config is the whole configuration file.
type Config struct {
	SMS          SMS                `yaml:"sms"`
	Delivery     Delivery           `yaml:"delivery"`
	Storage      Storage            `yaml:"storage"`
	Templates    Templates          `yaml:"templates"`
	Alertmanager Alertmanager       `yaml:"alertmanager"`
	Webhooks     []Webhook          `yaml:"webhooks"`
	Route        *routing.Route     `yaml:"route"`
	Receivers    []routing.Receiver `yaml:"receivers"`
	Oncall       []routing.Oncall   `yaml:"oncall"`
	Dedup        Dedup              `yaml:"dedup"`
	Throttle     Throttle           `yaml:"throttle"`
	Budget       Budget             `yaml:"budget"`
	// TimeIntervals are named for routes and on-call layers.
	TimeIntervals []TimeInterval `yaml:"time_intervals"`
	// People are whom on-call lists and receivers may name.
	People []oncall.Person `yaml:"people"`
	// Replies are the answers recipients send (two-way SMS).
	Replies Replies `yaml:"replies"`
	// AlertmanagerAPI is where acknowledgements create silences; nil
	// for none.
	AlertmanagerAPI *AlertmanagerAPI `yaml:"alertmanager_api"`
}

// SMS is the provider's API: the primary account and, optionally, a
// fallback account.
type SMS struct {
	URL        string        `yaml:"url"`
	APIKey     secret.Secret `yaml:"api_key"`
	APIKeyFile string        `yaml:"api_key_file"`
	// Timeout bounds one API request.
	Timeout Duration `yaml:"timeout"`
	// RateLimit is the most API requests per second the bridge makes.
	RateLimit float64 `yaml:"rate_limit"`
	// MaxSegments is the longest text sent, in SMS segments.
	MaxSegments int `yaml:"max_segments"`
	// BatchSize is the most numbers in one request.
	BatchSize int `yaml:"batch_size"`
	// DefaultPause is the wait after a 429 that names no time.
	DefaultPause Duration `yaml:"default_pause"`
	// Fallback is a second account, used while the primary is held or
	// has failed every attempt for FallbackAfter; nil for none.
	Fallback *Fallback `yaml:"fallback"`
	// FallbackAfter is how long the primary must have failed every attempt
	// before the fallback takes over.
	FallbackAfter Duration `yaml:"fallback_after"`
	// Callback is the endpoint the provider posts receipts and replies
	// to; nil for none.
	Callback *Callback `yaml:"callback"`
}

// Fallback is the second provider account. URL, RateLimit and Timeout
// default to the primary's; the key must be its own.
type Fallback struct {
	URL        string        `yaml:"url"`
	APIKey     secret.Secret `yaml:"api_key"`
	APIKeyFile string        `yaml:"api_key_file"`
	RateLimit  float64       `yaml:"rate_limit"`
	Timeout    Duration      `yaml:"timeout"`
}

// Delivery is the dispatcher's retry policy.
type Delivery struct {
	MinBackoff Duration `yaml:"min_backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	MaxAge     Duration `yaml:"max_age"`
	// HoldRetry is how often a held queue (401, 403, 405) probes the API.
	HoldRetry Duration `yaml:"hold_retry"`
	// Workers is the most API requests in flight at once. 0, the default,
	// lets the dispatcher size it from the rate limit, so the provider is
	// used at its full rate whatever its latency; no request starts after a
	// 429 arrived, however many are in flight.
	Workers int `yaml:"workers"`
}

// Storage is the outbox.
type Storage struct {
	// Retention is how long delivered and failed rows are kept.
	Retention Duration `yaml:"retention"`
	// Driver is StorageSQLite (a file under --storage.path, one process)
	// or StoragePostgres (a database several replicas share).
	Driver string `yaml:"driver"`
	// DSN and DSNFile name the PostgreSQL database (a postgres:// URL or
	// key=value pairs); exactly one is set with the postgres driver.
	DSN     secret.Secret `yaml:"dsn"`
	DSNFile string        `yaml:"dsn_file"`
	// PollInterval is how often a replica looks for work that other
	// replicas committed when it does not hear their notifications.
	PollInterval Duration `yaml:"poll_interval"`
	// Listen turns LISTEN/NOTIFY wake-ups on (the default); false polls
	// only, for a pooler in transaction mode.
	Listen *bool `yaml:"listen"`
	// MinFree is the free space below which new notifications are
	// refused (503) and readiness fails, before the disk is full; the
	// store keeps a reserve of MinFree/2 (at most 4 MiB) for sending what
	// it accepted.
	MinFree ByteSize `yaml:"min_free"`
}

// Storage drivers.
const (
	StorageSQLite   = "sqlite"
	StoragePostgres = "postgres"
)

// Templates names the user's template files.
type Templates struct {
	Files []string `yaml:"files"`
}

// Alertmanager is the Alertmanager endpoint.
type Alertmanager struct {
	Auth       *auth.Config `yaml:"auth"`
	BodyLimit  ByteSize     `yaml:"body_limit"`
	RateLimit  *RateLimit   `yaml:"rate_limit"`
	DeliveryID `yaml:",inline"`
}

// Webhook is one generic JSON source, served at /api/v1/webhooks/{name}.
type Webhook struct {
	Name           string       `yaml:"name"`
	Auth           *auth.Config `yaml:"auth"`
	BodyLimit      ByteSize     `yaml:"body_limit"`
	RateLimit      *RateLimit   `yaml:"rate_limit"`
	DeliveryID     `yaml:",inline"`
	mapping.Config `yaml:",inline"`
}

// DeliveryID names the request header in which a sender identifies each
// delivery, so that a repeat of one already accepted (a replay, or a retry
// after a lost answer) is answered "duplicate" and sends nothing. The
// well-known headers (X-GitHub-Delivery, X-Gitea-Delivery, GitLab's
// Idempotency-Key, Standard Webhooks' webhook-id) are read without it.
type DeliveryID struct {
	// Header is the sender's delivery id header; it is read before the
	// well-known ones.
	Header string `yaml:"delivery_id_header"`
	// TTL is how long an id is remembered: the header above and the
	// well-known ones, except a webhook-id signed with standard-webhooks
	// auth, which is remembered for its tolerance window.
	TTL Duration `yaml:"delivery_id_ttl"`
}

// RateLimit is a token bucket for one intake source.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket's size; unset, it holds a second's worth of
	// requests (at least one).
	Burst int `yaml:"burst"`
}

// ByteSize is a size in bytes written as 1048576, 512KiB, 1MiB or 1MB.
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

func parseByteSize(s string) (ByteSize, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q is not a positive size such as 1048576, 512KiB or 1MiB", s)
	}
	return ByteSize(n * mult), nil
}

// Duration is a duration written the way Prometheus writes them: 500ms,
// 30s, 5m, 6h, 7d, 1w. Convert it with time.Duration(d).
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler; unlike model.Duration's own,
// its errors carry the line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration such as 30s, 5m or 6h is a single value", n.Line)
	}
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		t := strings.TrimSpace(n.Value)
		switch {
		case strings.HasPrefix(t, "-"):
			return fmt.Errorf("line %d: %q is negative; a duration must be positive, such as 500ms, 30s, 5m, 6h or 7d", n.Line, n.Value)
		case strings.HasSuffix(t, "ns") || strings.HasSuffix(t, "us") || strings.HasSuffix(t, "µs"):
			return fmt.Errorf("line %d: %q is finer than a millisecond, the smallest unit; write one such as 500ms, 30s, 5m, 6h or 7d", n.Line, n.Value)
		}
		return fmt.Errorf("line %d: %q is not a valid duration; write one such as 500ms, 30s, 5m, 6h or 7d", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String writes d as it would be configured, such as 5m or 6h.
func (d Duration) String() string { return model.Duration(d).String() }

// Defaults, in one place so the example config and the docs can agree, and
// applied once, at load: the packages that run take complete settings.
const (
	DefaultURL           = "https://api.touchbasepro.com/sms/messages"
	DefaultTimeout       = 10 * time.Second
	DefaultRateLimit     = 10
	DefaultMaxSegments   = 3
	DefaultBatchSize     = 100
	DefaultPause         = 30 * time.Second
	DefaultFallbackAfter = 2 * time.Minute
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultMaxAge        = 6 * time.Hour
	DefaultHoldRetry     = time.Minute
	DefaultWorkers       = 0 // automatic: dispatch.AutoInFlight
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultStorageDriver = StorageSQLite
	DefaultPollInterval  = time.Second
	DefaultBodyLimit     = 1 << 20
	DefaultMinFree       = 64 << 20
	DefaultDeliveryIDTTL = 24 * time.Hour
)

// Bounds of validated values. A value outside them is a mistake (a unit
// forgotten, a key meant for another field) more often than a wish.
const (
	maxSegmentsCeiling = 10
	maxRateLimitPerSec = 1000
	maxBatchSize       = 1000
	maxWorkers         = 64
	maxTimeout         = 5 * time.Minute
	maxPause           = time.Hour
	maxHoldRetry       = time.Hour
	minPollInterval    = 100 * time.Millisecond
	maxPollInterval    = time.Minute
	minMaxAge          = time.Minute
	minFallbackAfter   = time.Second
	minMinFree         = 1 << 20
	minDeliveryIDTTL   = time.Minute
	maxDeliveryIDTTL   = 30 * 24 * time.Hour
)

// setDefaults fills what the file leaves unset.
func (c *Config) setDefaults() {
	s := &c.SMS
	if s.URL == "" {
		s.URL = DefaultURL
	}
	setDuration(&s.Timeout, DefaultTimeout)
	if s.RateLimit == 0 {
		s.RateLimit = DefaultRateLimit
	}
	if s.MaxSegments == 0 {
		s.MaxSegments = DefaultMaxSegments
	}
	if s.BatchSize == 0 {
		s.BatchSize = DefaultBatchSize
	}
	setDuration(&s.DefaultPause, DefaultPause)
	setDuration(&s.FallbackAfter, DefaultFallbackAfter)
	if fb := s.Fallback; fb != nil {
		// A second account at the same provider is the common case.
		if fb.URL == "" {
			fb.URL = s.URL
		}
		if fb.RateLimit == 0 {
			fb.RateLimit = s.RateLimit
		}
		setDuration(&fb.Timeout, time.Duration(s.Timeout))
	}
	d := &c.Delivery
	setDuration(&d.MinBackoff, DefaultMinBackoff)
	setDuration(&d.MaxBackoff, DefaultMaxBackoff)
	setDuration(&d.MaxAge, DefaultMaxAge)
	setDuration(&d.HoldRetry, DefaultHoldRetry)
	setDuration(&c.Storage.Retention, DefaultRetention)
	if c.Storage.Driver == "" {
		c.Storage.Driver = DefaultStorageDriver
	}
	setDuration(&c.Storage.PollInterval, DefaultPollInterval)
	if c.Storage.Listen == nil {
		listen := true
		c.Storage.Listen = &listen
	}
	if c.Storage.MinFree == 0 {
		c.Storage.MinFree = DefaultMinFree
	}
	if c.Alertmanager.BodyLimit == 0 {
		c.Alertmanager.BodyLimit = DefaultBodyLimit
	}
	c.Alertmanager.RateLimit.setDefaults()
	setDuration(&c.Alertmanager.DeliveryID.TTL, DefaultDeliveryIDTTL)
	setDuration(&c.Dedup.Window, DefaultDedupWindow)
	if c.Budget.TimeZone == "" {
		c.Budget.TimeZone = DefaultTimeZone
	}
	for i := range c.Webhooks {
		if c.Webhooks[i].BodyLimit == 0 {
			c.Webhooks[i].BodyLimit = DefaultBodyLimit
		}
		c.Webhooks[i].RateLimit.setDefaults()
		setDuration(&c.Webhooks[i].DeliveryID.TTL, DefaultDeliveryIDTTL)
	}
	c.setTwoWayDefaults()
}

// setDefaults sizes an unset bucket to a second's worth of requests, and
// at least one.
func (r *RateLimit) setDefaults() {
	if r != nil && r.Burst == 0 {
		r.Burst = max(1, int(r.PerSecond))
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// Error is a configuration error, with the file and line it is on when
// known. Err, when set, is the cause, for errors.Is and errors.As.
type Error struct {
	File string
	Line int
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.File == "" && e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	case e.File == "":
		return e.Msg
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// File is a loaded configuration file.
type File struct {
	Config *Config
	// Path is the file's path, and Dir the directory relative paths in it
	// are resolved against.
	Path string
	Dir  string
	// Hash is the SHA-256 of the file's bytes, to tell which config runs.
	Hash string
	root *yaml.Node
}

// LoadFile reads, strictly decodes and validates the file at path.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", err), Err: err}
	}
	f, err := load(data, path, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Load strictly decodes and validates a configuration: unknown keys,
// wrong types and bad values are errors with their line. Relative paths in
// it are resolved against the working directory.
func Load(data []byte) (*File, error) {
	return load(data, "", ".")
}

func load(data []byte, path, dir string) (*File, error) {
	sum := sha256.Sum256(data)
	f := &File{Config: &Config{}, Hash: hex.EncodeToString(sum[:]), Path: path, Dir: dir}
	fail := func(err *Error) (*File, error) {
		err.File = path
		return nil, err
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(&Error{Msg: "config is empty"})
		}
		return fail(yamlError(err))
	}
	f.root = &root
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f.Config); err != nil {
		var he *httpConfigError
		if errors.As(err, &he) {
			return fail(&Error{Line: f.Line("alertmanager_api.http_config"), Msg: "alertmanager_api.http_config: " + he.Error(), Err: he.err})
		}
		return fail(yamlError(err))
	}
	f.Config.setDefaults()
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// yamlError turns yaml.v3's "yaml: line N: ..." texts into Errors.
func yamlError(err error) *Error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return lineError(te.Errors[0])
	}
	return lineError(err.Error())
}

func lineError(msg string) *Error {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				return &Error{Line: n, Msg: plainYAML(strings.TrimSpace(rest[i+1:]))}
			}
		}
	}
	return &Error{Msg: plainYAML(msg)}
}

var (
	unknownFieldRe = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	unmarshalRe    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// plainYAML says yaml.v3's decode errors without Go's type names: an
// unknown key, or a value of the wrong kind.
func plainYAML(msg string) string {
	if m := unknownFieldRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown key %q here (check its spelling and its indentation)", m[1])
	}
	if m := unmarshalRe.FindStringSubmatch(msg); m != nil {
		got := map[string]string{"str": "a string", "int": "a number", "float": "a number", "bool": "true or false",
			"seq": "a list", "map": "a mapping", "null": "nothing", "timestamp": "a timestamp", "binary": "binary data"}[m[1]]
		if got == "" {
			got = "a " + m[1]
		}
		if m[2] != "" {
			got += fmt.Sprintf(" %q", m[2])
		}
		return fmt.Sprintf("wrong kind of value: %s where %s is expected", got, wantKind(m[3]))
	}
	return msg
}

// wantKind names the kind of YAML value Go type t is decoded from.
func wantKind(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.Contains(t, "Duration"):
		return "a duration such as 30s or 5m"
	default:
		return "a mapping of settings"
	}
}

// Resolve returns p resolved against the config file's directory, as
// Alertmanager resolves its template files; absolute and empty paths are
// returned as they are.
func (f *File) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// Line returns the line of the key at path, written in the configuration's
// own syntax: "sms.api_key_file", "receivers[2].oncall[0]",
// "route.routes[1].matchers[0]". Where the path leads past what the file
// holds (a key left out), it is the line of the deepest part that exists,
// so an error about a missing key points at its parent. 0 when the file
// has no lines (an empty document).
func (f *File) Line(path string) int {
	line, _ := f.walk(path)
	return line
}

// Errorf returns an Error at the line of path (see Line), in this file.
// The message is formatted as fmt.Errorf formats it; a %w verb's operand
// becomes the Error's cause.
func (f *File) Errorf(path, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{File: f.Path, Line: f.Line(path), Msg: err.Error(), Err: errors.Unwrap(err)}
}

// node returns the YAML node at path, or nil when the file does not hold
// all of it.
func (f *File) node(path string) *yaml.Node {
	_, n := f.walk(path)
	return n
}

// walk follows path through the file. It returns the line of the deepest
// part found, and the node at path when all of it was found.
func (f *File) walk(path string) (int, *yaml.Node) {
	if f.root == nil || len(f.root.Content) == 0 {
		return 0, nil
	}
	n := deref(f.root.Content[0])
	line := n.Line
	for _, p := range splitPath(path) {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line, nil
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line = n.Content[i].Line
					n = deref(n.Content[i+1])
					found = true
					break
				}
			}
			if !found {
				return line, nil
			}
		case int:
			if n.Kind != yaml.SequenceNode || k < 0 || k >= len(n.Content) {
				return line, nil
			}
			n = deref(n.Content[k])
			line = n.Line
		}
	}
	return line, n
}

// deref follows a YAML alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// splitPath turns "receivers[2].oncall[0]" into "receivers", 2, "oncall",
// 0. An index that does not parse ends the path there.
func splitPath(path string) []any {
	var out []any
	if path == "" {
		return out
	}
	for part := range strings.SplitSeq(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			out = append(out, name)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil {
				return out
			}
			out = append(out, n)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

// validate checks what needs no other package: ranges, names, URLs and
// which keys go together. It reports the first problem, at its line.
func (f *File) validate() error {
	c := f.Config
	s := c.SMS
	if s.APIKey != "" && s.APIKeyFile != "" {
		return f.Errorf("sms.api_key", "sms: set api_key or api_key_file, not both")
	}
	if err := validURL(s.URL); err != nil {
		return f.Errorf("sms.url", "sms.url %v", err)
	}
	if err := inRange(s.Timeout, 1, maxTimeout); err != nil {
		return f.Errorf("sms.timeout", "sms.timeout %v", err)
	}
	if s.RateLimit < 0 || s.RateLimit > maxRateLimitPerSec {
		return f.Errorf("sms.rate_limit", "sms.rate_limit %v must be between 0 and %d requests per second", s.RateLimit, maxRateLimitPerSec)
	}
	if s.MaxSegments < 1 || s.MaxSegments > maxSegmentsCeiling {
		return f.Errorf("sms.max_segments", "sms.max_segments %d must be between 1 and %d", s.MaxSegments, maxSegmentsCeiling)
	}
	if s.BatchSize < 1 || s.BatchSize > maxBatchSize {
		return f.Errorf("sms.batch_size", "sms.batch_size %d must be between 1 and %d", s.BatchSize, maxBatchSize)
	}
	if err := inRange(s.DefaultPause, 1, maxPause); err != nil {
		return f.Errorf("sms.default_pause", "sms.default_pause %v", err)
	}
	if err := inRange(s.FallbackAfter, minFallbackAfter, 0); err != nil {
		return f.Errorf("sms.fallback_after", "sms.fallback_after %v", err)
	}
	if err := f.validateFallback(); err != nil {
		return err
	}

	d := c.Delivery
	if err := inRange(d.MinBackoff, 1, 0); err != nil {
		return f.Errorf("delivery.min_backoff", "delivery.min_backoff %v", err)
	}
	if d.MinBackoff > d.MaxBackoff {
		return f.Errorf("delivery.min_backoff", "delivery.min_backoff %s is longer than max_backoff %s", d.MinBackoff, d.MaxBackoff)
	}
	if err := inRange(d.MaxAge, minMaxAge, 0); err != nil {
		return f.Errorf("delivery.max_age", "delivery.max_age %v", err)
	}
	if err := inRange(d.HoldRetry, 1, maxHoldRetry); err != nil {
		return f.Errorf("delivery.hold_retry", "delivery.hold_retry %v", err)
	}
	if d.Workers < 0 || d.Workers > maxWorkers {
		return f.Errorf("delivery.workers", "delivery.workers %d must be between 1 and %d, or 0 to let the dispatcher choose", d.Workers, maxWorkers)
	}
	if err := inRange(c.Storage.Retention, 1, 0); err != nil {
		return f.Errorf("storage.retention", "storage.retention %v", err)
	}
	if err := f.validateStorage(); err != nil {
		return err
	}
	if c.Storage.MinFree < minMinFree {
		return f.Errorf("storage.min_free", "storage.min_free %d bytes must be at least 1MiB", c.Storage.MinFree)
	}

	if c.Route == nil {
		return f.Errorf("", "route: missing; the root route names the receiver that catches every notification")
	}
	for i, rc := range c.Receivers {
		// 0 is unset: the receiver takes sms.max_segments.
		if rc.MaxSegments < 0 || rc.MaxSegments > maxSegmentsCeiling {
			return f.Errorf(fmt.Sprintf("receivers[%d].max_segments", i), "receiver %q: max_segments %d must be between 1 and %d", rc.Name, rc.MaxSegments, maxSegmentsCeiling)
		}
	}
	seen := map[string]bool{}
	for i, w := range c.Webhooks {
		at := fmt.Sprintf("webhooks[%d]", i)
		switch {
		case w.Name == "":
			return f.Errorf(at, "webhooks[%d]: name is empty", i)
		case !validSourceName(w.Name):
			return f.Errorf(at+".name", "webhooks[%d]: name %q may hold only letters, digits, '-' and '_' (it is part of the URL)", i, w.Name)
		case seen[w.Name]:
			return f.Errorf(at+".name", "webhooks: name %q is used twice", w.Name)
		case w.Name == "unknown":
			return f.Errorf(at+".name", `webhooks: name "unknown" is reserved`)
		}
		seen[w.Name] = true
		if err := validRateLimit(w.RateLimit); err != nil {
			return f.Errorf(at+".rate_limit", "webhooks %q: %v", w.Name, err)
		}
		if err := f.validDeliveryID(w.DeliveryID, at, fmt.Sprintf("webhooks %q", w.Name)); err != nil {
			return err
		}
	}
	if err := validRateLimit(c.Alertmanager.RateLimit); err != nil {
		return f.Errorf("alertmanager.rate_limit", "alertmanager: %v", err)
	}
	if err := f.validDeliveryID(c.Alertmanager.DeliveryID, "alertmanager", "alertmanager"); err != nil {
		return err
	}
	if err := f.validateNoise(); err != nil {
		return err
	}
	if err := f.validateTwoWay(); err != nil {
		return err
	}
	return f.validateTimeIntervals()
}

// validDeliveryID checks a source's delivery id settings; at is the
// source's path and what names it in the message.
func (f *File) validDeliveryID(d DeliveryID, at, what string) error {
	if d.Header != "" && !validHeaderName(d.Header) {
		return f.Errorf(at+".delivery_id_header", "%s: delivery_id_header %q is not a valid header name", what, d.Header)
	}
	if err := inRange(d.TTL, minDeliveryIDTTL, maxDeliveryIDTTL); err != nil {
		return f.Errorf(at+".delivery_id_ttl", "%s: delivery_id_ttl %v", what, err)
	}
	return nil
}

// validateStorage checks the store's driver and its connection settings.
// Its errors never repeat a DSN.
func (f *File) validateStorage() error {
	st := f.Config.Storage
	switch st.Driver {
	case StorageSQLite:
		if st.DSN != "" || st.DSNFile != "" {
			return f.Errorf("storage.driver", "storage: dsn and dsn_file are for the postgres driver; the sqlite driver keeps its file under --storage.path")
		}
	case StoragePostgres:
		switch {
		case st.DSN != "" && st.DSNFile != "":
			return f.Errorf("storage.dsn", "storage: set dsn or dsn_file, not both")
		case st.DSN == "" && st.DSNFile == "":
			return f.Errorf("storage", "storage: the postgres driver needs dsn_file (or dsn), the database's connection string")
		}
	default:
		return f.Errorf("storage.driver", "storage.driver %q is not %q or %q", st.Driver, StorageSQLite, StoragePostgres)
	}
	if err := inRange(st.PollInterval, minPollInterval, maxPollInterval); err != nil {
		return f.Errorf("storage.poll_interval", "storage.poll_interval %v", err)
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// validateFallback checks the second account: a key of its own, a URL, and
// not the primary account again.
func (f *File) validateFallback() error {
	s := f.Config.SMS
	fb := s.Fallback
	if fb == nil {
		return nil
	}
	switch {
	case fb.APIKey != "" && fb.APIKeyFile != "":
		return f.Errorf("sms.fallback.api_key", "sms.fallback: set api_key or api_key_file, not both")
	case fb.APIKey == "" && fb.APIKeyFile == "":
		return f.Errorf("sms.fallback", "sms.fallback: no API key; set api_key_file (or api_key) for the second account")
	}
	if err := validURL(fb.URL); err != nil {
		return f.Errorf("sms.fallback.url", "sms.fallback.url %v", err)
	}
	if err := inRange(fb.Timeout, 1, maxTimeout); err != nil {
		return f.Errorf("sms.fallback.timeout", "sms.fallback.timeout %v", err)
	}
	if fb.RateLimit < 0 || fb.RateLimit > maxRateLimitPerSec {
		return f.Errorf("sms.fallback.rate_limit", "sms.fallback.rate_limit %v must be between 0 and %d requests per second", fb.RateLimit, maxRateLimitPerSec)
	}
	sameKey := (fb.APIKeyFile != "" && f.Resolve(fb.APIKeyFile) == f.Resolve(s.APIKeyFile)) ||
		(fb.APIKey != "" && fb.APIKey == s.APIKey)
	if fb.URL == s.URL && sameKey {
		return f.Errorf("sms.fallback", "sms.fallback: the same URL and key as the primary account; a fallback must be another account")
	}
	return nil
}

// validURL checks an API endpoint. Its errors never repeat the URL when it
// may hold credentials.
func validURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("is not a valid URL")
	case u.User != nil:
		return errors.New("must not contain credentials; the API key is sent as a bearer token")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must be an http:// or https:// URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// inRange checks d >= lo and, when hi is not 0, d <= hi.
func inRange(d Duration, lo, hi time.Duration) error {
	v := time.Duration(d)
	switch {
	case v < lo && lo <= 1:
		return fmt.Errorf("%s must be positive", d)
	case v < lo:
		return fmt.Errorf("%s must be at least %s", d, Duration(lo))
	case hi > 0 && v > hi:
		return fmt.Errorf("%s must be at most %s", d, Duration(hi))
	}
	return nil
}

func validRateLimit(r *RateLimit) error {
	if r == nil {
		return nil
	}
	if r.PerSecond <= 0 {
		return errors.New("rate_limit.per_second must be above 0")
	}
	if r.Burst < 0 {
		return errors.New("rate_limit.burst must not be negative")
	}
	return nil
}

func validSourceName(s string) bool {
	for _, r := range s {
		ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return len(s) <= 64
}
