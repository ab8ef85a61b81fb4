package config

import (
	"fmt"
	"time"
	// Time zones are validated here (budget.time_zone) and used at run
	// time; the distroless image has no zoneinfo of its own to rely on.
	_ "time/tzdata"
)

// Dedup is duplicate suppression: a receiver's message equal to the one it
// got for the same group within Window is not sent again.
type Dedup struct {
	// Window must exceed Alertmanager's peer_timeout times (peers - 1)
	// and stay below its repeat_interval (docs/noise.md).
	Window Duration `yaml:"window"`
}

// Throttle is the per-number throttle.
type Throttle struct {
	// PerNumber are the buckets; a message that would exceed one is held
	// for its number and sent in a digest when the number may receive
	// again. None turns the throttle off.
	PerNumber []Bucket `yaml:"per_number"`
}

// Bucket is at most Count messages to one number per Per.
type Bucket struct {
	Count int      `yaml:"count"`
	Per   Duration `yaml:"per"`
}

// Budget is the daily segment budget.
type Budget struct {
	// DailySegments is what a day may cost: segments times numbers
	// accepted. 0 turns the budget off.
	DailySegments int `yaml:"daily_segments"`
	// TimeZone is where the day starts at midnight (IANA name).
	TimeZone string `yaml:"time_zone"`
	// Critical are matchers (Alertmanager syntax) an alert must all match
	// for its messages to go past a spent budget.
	Critical []string `yaml:"critical"`
}

// Defaults and bounds of the noise controls.
const (
	DefaultDedupWindow = 5 * time.Minute
	DefaultTimeZone    = "UTC"
	maxDedupWindow     = 24 * time.Hour
	maxBucketPer       = 24 * time.Hour
	maxBucketCount     = 1000
)

// Location returns the budget's time zone. It is checked at load, so
// the error is only for a Budget that was not.
func (b Budget) Location() (*time.Location, error) {
	return time.LoadLocation(b.TimeZone)
}

// validateNoise checks dedup, throttle and budget, and the receivers'
// throttle flags need nothing. The critical matchers are parsed when the
// generation is built.
func (f *File) validateNoise() error {
	c := f.Config
	if err := inRange(c.Dedup.Window, time.Second, maxDedupWindow); err != nil {
		return f.Errorf("dedup.window", "dedup.window %v", err)
	}
	seen := map[Duration]int{}
	for i, b := range c.Throttle.PerNumber {
		at := fmt.Sprintf("throttle.per_number[%d]", i)
		if b.Count < 1 || b.Count > maxBucketCount {
			return f.Errorf(at+".count", "%s.count %d must be between 1 and %d", at, b.Count, maxBucketCount)
		}
		if b.Per == 0 {
			return f.Errorf(at, "%s: per is missing; write how long the window is, such as per: 15m", at)
		}
		if err := inRange(b.Per, time.Second, maxBucketPer); err != nil {
			return f.Errorf(at+".per", "%s.per %v", at, err)
		}
		if j, dup := seen[b.Per]; dup {
			return f.Errorf(at+".per", "%s: per %s is the window of throttle.per_number[%d] too; give each window once", at, b.Per, j)
		}
		seen[b.Per] = i
	}
	bg := c.Budget
	if bg.DailySegments < 0 {
		return f.Errorf("budget.daily_segments", "budget.daily_segments %d must not be negative (0 turns the budget off)", bg.DailySegments)
	}
	if _, err := bg.Location(); err != nil {
		return f.Errorf("budget.time_zone", "budget.time_zone %q is not a known time zone; write an IANA name such as Europe/Berlin or UTC", bg.TimeZone)
	}
	return nil
}
