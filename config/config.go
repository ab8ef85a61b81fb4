// Package config is smsbridge's YAML configuration as a whole: strict
// loading with line numbers, defaults, validation, and compilation into the
// router, renderer and intake sources one running configuration needs.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/internal/secret"
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
}

// SMS is the provider's API.
type SMS struct {
	URL        string         `yaml:"url"`
	APIKey     secret.Secret  `yaml:"api_key"`
	APIKeyFile string         `yaml:"api_key_file"`
	Timeout    model.Duration `yaml:"timeout"`
	// RateLimit is the most API requests per second the bridge makes.
	RateLimit float64 `yaml:"rate_limit"`
	// MaxSegments is the longest text sent, in SMS segments.
	MaxSegments int `yaml:"max_segments"`
	// BatchSize is the most numbers in one request.
	BatchSize int `yaml:"batch_size"`
	// DefaultPause is the wait after a 429 that names no time.
	DefaultPause model.Duration `yaml:"default_pause"`
}

// Delivery is the dispatcher's retry policy.
type Delivery struct {
	MinBackoff model.Duration `yaml:"min_backoff"`
	MaxBackoff model.Duration `yaml:"max_backoff"`
	MaxAge     model.Duration `yaml:"max_age"`
	// HoldRetry is how often a held queue (401, 403, 405) probes the API.
	HoldRetry model.Duration `yaml:"hold_retry"`
	Workers   int            `yaml:"workers"`
}

// Storage is the outbox.
type Storage struct {
	// Retention is how long delivered and failed rows are kept.
	Retention model.Duration `yaml:"retention"`
}

// Templates names the user's template files.
type Templates struct {
	Files []string `yaml:"files"`
}

// Alertmanager is the Alertmanager endpoint.
type Alertmanager struct {
	Auth      *auth.Config `yaml:"auth"`
	BodyLimit ByteSize     `yaml:"body_limit"`
	RateLimit *RateLimit   `yaml:"rate_limit"`
}

// Webhook is one generic JSON source, served at /api/v1/webhooks/{name}.
type Webhook struct {
	Name           string       `yaml:"name"`
	Auth           *auth.Config `yaml:"auth"`
	BodyLimit      ByteSize     `yaml:"body_limit"`
	RateLimit      *RateLimit   `yaml:"rate_limit"`
	mapping.Config `yaml:",inline"`
}

// RateLimit is a token bucket for one intake source.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
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

// Defaults, in one place so the example config and the docs can agree.
const (
	DefaultURL          = "https://api.touchbasepro.com/sms/messages"
	DefaultTimeout      = 10 * time.Second
	DefaultRateLimit    = 10
	DefaultMaxSegments  = 3
	DefaultBatchSize    = 100
	DefaultPause        = 30 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 5 * time.Minute
	DefaultMaxAge       = 6 * time.Hour
	DefaultHoldRetry    = time.Minute
	DefaultWorkers      = 1
	DefaultRetention    = 7 * 24 * time.Hour
	DefaultBodyLimit    = 1 << 20
	maxSegmentsCeiling  = 10
	maxRateLimitPerSec  = 1000
	maxBatchSizeCeiling = 1000
)

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
	d := &c.Delivery
	setDuration(&d.MinBackoff, DefaultMinBackoff)
	setDuration(&d.MaxBackoff, DefaultMaxBackoff)
	setDuration(&d.MaxAge, DefaultMaxAge)
	setDuration(&d.HoldRetry, DefaultHoldRetry)
	if d.Workers == 0 {
		d.Workers = DefaultWorkers
	}
	setDuration(&c.Storage.Retention, DefaultRetention)
	if c.Alertmanager.BodyLimit == 0 {
		c.Alertmanager.BodyLimit = DefaultBodyLimit
	}
	for i := range c.Webhooks {
		if c.Webhooks[i].BodyLimit == 0 {
			c.Webhooks[i].BodyLimit = DefaultBodyLimit
		}
	}
}

func setDuration(d *model.Duration, def time.Duration) {
	if *d == 0 {
		*d = model.Duration(def)
	}
}

// Error is a configuration error, with the line it is on when known.
type Error struct {
	File string
	Line int
	Msg  string
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
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}
	}
	f, err := Load(data)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = path
		}
		return nil, err
	}
	f.Path = path
	f.Dir = filepath.Dir(path)
	return f, nil
}

// Load strictly decodes and validates a configuration: unknown keys,
// wrong types and bad values are errors with their line.
func Load(data []byte) (*File, error) {
	sum := sha256.Sum256(data)
	f := &File{Config: &Config{}, Hash: hex.EncodeToString(sum[:]), Dir: "."}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "config is empty"}
		}
		return nil, yamlError(err)
	}
	f.root = &root
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f.Config); err != nil {
		return nil, yamlError(err)
	}
	f.Config.setDefaults()
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// yamlError turns yaml.v3's "yaml: line N: ..." texts into Errors.
func yamlError(err error) error {
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
				return &Error{Line: n, Msg: strings.TrimSpace(rest[i+1:])}
			}
		}
	}
	return &Error{Msg: msg}
}

// lineOf finds the line of the node at path (map keys and list indexes)
// so a semantic error can point at its place in the file.
func (f *File) lineOf(path ...any) int {
	if f.root == nil || len(f.root.Content) == 0 {
		return 0
	}
	n := f.root.Content[0]
	line := n.Line
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}

func (f *File) errorf(path []any, format string, args ...any) *Error {
	return &Error{Line: f.lineOf(path...), Msg: fmt.Sprintf(format, args...)}
}

// validate checks what needs no other package: ranges, names and secrets.
func (f *File) validate() error {
	c := f.Config
	s := c.SMS
	if s.APIKey != "" && s.APIKeyFile != "" {
		return f.errorf([]any{"sms", "api_key"}, "sms: set api_key or api_key_file, not both")
	}
	if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
		return f.errorf([]any{"sms", "url"}, "sms.url %q must be an http:// or https:// URL", s.URL)
	}
	if s.RateLimit < 0 || s.RateLimit > maxRateLimitPerSec {
		return f.errorf([]any{"sms", "rate_limit"}, "sms.rate_limit %v must be between 0 and %d requests per second", s.RateLimit, maxRateLimitPerSec)
	}
	if s.MaxSegments < 1 || s.MaxSegments > maxSegmentsCeiling {
		return f.errorf([]any{"sms", "max_segments"}, "sms.max_segments %d must be between 1 and %d", s.MaxSegments, maxSegmentsCeiling)
	}
	if s.BatchSize < 1 || s.BatchSize > maxBatchSizeCeiling {
		return f.errorf([]any{"sms", "batch_size"}, "sms.batch_size %d must be between 1 and %d", s.BatchSize, maxBatchSizeCeiling)
	}
	d := c.Delivery
	if d.MinBackoff > d.MaxBackoff {
		return f.errorf([]any{"delivery", "min_backoff"}, "delivery.min_backoff %s is longer than max_backoff %s", d.MinBackoff, d.MaxBackoff)
	}
	if d.Workers < 1 || d.Workers > 64 {
		return f.errorf([]any{"delivery", "workers"}, "delivery.workers %d must be between 1 and 64", d.Workers)
	}
	if c.Route == nil {
		return f.errorf(nil, "route: missing; the root route names the receiver that catches every notification")
	}
	seen := map[string]bool{}
	for i, w := range c.Webhooks {
		switch {
		case w.Name == "":
			return f.errorf([]any{"webhooks", i}, "webhooks[%d]: name is empty", i)
		case !validSourceName(w.Name):
			return f.errorf([]any{"webhooks", i, "name"}, "webhooks[%d]: name %q may hold only letters, digits, '-' and '_' (it is part of the URL)", i, w.Name)
		case seen[w.Name]:
			return f.errorf([]any{"webhooks", i, "name"}, "webhooks: name %q is used twice", w.Name)
		case w.Name == "unknown":
			return f.errorf([]any{"webhooks", i, "name"}, `webhooks: name "unknown" is reserved`)
		}
		seen[w.Name] = true
		if err := validRateLimit(w.RateLimit); err != nil {
			return f.errorf([]any{"webhooks", i, "rate_limit"}, "webhooks %q: %v", w.Name, err)
		}
	}
	if err := validRateLimit(c.Alertmanager.RateLimit); err != nil {
		return f.errorf([]any{"alertmanager", "rate_limit"}, "alertmanager: %v", err)
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
