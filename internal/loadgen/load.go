package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// payload is an Alertmanager webhook (version 4) with one firing alert of
// a realistic size (about 1 KB), named name so its SMS can be recognised
// at the fake provider.
func payload(name string, seq int) []byte {
	return fmt.Appendf(nil, `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}/{severity=\"critical\"}:{alertname=\"%[1]s\"}",`+
		`"groupLabels":{"alertname":"%[1]s"},`+
		`"commonLabels":{"alertname":"%[1]s","env":"prod","instance":"db-%[2]d.example.net:9100","job":"node","severity":"critical","team":"db"},`+
		`"commonAnnotations":{"summary":"Filesystem / on db-%[2]d is 97%% full","runbook_url":"https://runbooks.example.net/disk-full"},`+
		`"externalURL":"http://alertmanager.example.net:9093","truncatedAlerts":0,`+
		`"alerts":[{"status":"firing","labels":{"alertname":"%[1]s","env":"prod","instance":"db-%[2]d.example.net:9100","job":"node","severity":"critical","team":"db","mountpoint":"/","device":"/dev/sda1","fstype":"ext4"},`+
		`"annotations":{"summary":"Filesystem / on db-%[2]d is 97%% full","description":"The filesystem / on db-%[2]d has 3%% space left and at the current rate fills within 2 hours.","runbook_url":"https://runbooks.example.net/disk-full"},`+
		`"startsAt":"2026-11-26T03:00:00.000Z","endsAt":"0001-01-01T00:00:00Z",`+
		`"generatorURL":"http://prometheus.example.net:9090/graph?g0.expr=node_filesystem_avail_bytes%%7Bmountpoint%%3D%%22%%2F%%22%%7D+%%2F+node_filesystem_size_bytes+%%3C+0.05","fingerprint":"%016[2]x"}]}`,
		name, seq)
}

// heavyPayload is an Alertmanager webhook with three firing alerts of
// one group (about 3 KB), named name, each alert on its own instance and
// team, for the heavy phase's config (heavyRoutes), which routes the
// group to three receivers.
func heavyPayload(name string, seq int) []byte {
	var alerts []byte
	for i, team := range []string{"db", "web", "net"} {
		if i > 0 {
			alerts = append(alerts, ',')
		}
		alerts = fmt.Appendf(alerts, `{"status":"firing","labels":{"alertname":"%[1]s","env":"prod","instance":"%[3]s-%[2]d.example.net:9100","job":"node","severity":"critical","team":"%[3]s","mountpoint":"/","device":"/dev/sda1","fstype":"ext4"},`+
			`"annotations":{"summary":"Filesystem / on %[3]s-%[2]d is 97%% full","description":"The filesystem / on %[3]s-%[2]d has 3%% space left and at the current rate fills within 2 hours.","runbook_url":"https://runbooks.example.net/disk-full"},`+
			`"startsAt":"2026-11-26T03:00:00.000Z","endsAt":"0001-01-01T00:00:00Z",`+
			`"generatorURL":"http://prometheus.example.net:9090/graph?g0.expr=node_filesystem_avail_bytes%%7Bmountpoint%%3D%%22%%2F%%22%%7D+%%2F+node_filesystem_size_bytes+%%3C+0.05","fingerprint":"%016[4]x"}`,
			name, seq, team, 3*seq+i)
	}
	return fmt.Appendf(nil, `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}/{severity=\"critical\"}:{alertname=\"%[1]s\"}",`+
		`"groupLabels":{"alertname":"%[1]s"},`+
		`"commonLabels":{"alertname":"%[1]s","env":"prod","job":"node","severity":"critical","mountpoint":"/","device":"/dev/sda1","fstype":"ext4"},`+
		`"commonAnnotations":{"runbook_url":"https://runbooks.example.net/disk-full"},`+
		`"externalURL":"http://alertmanager.example.net:9093","truncatedAlerts":0,"alerts":[%[2]s]}`,
		name, alerts)
}

// alertName is the unique name of request seq in a run tagged tag
// (lower-case letters): it matches nameRE.
func alertName(tag string, seq int) string {
	return fmt.Sprintf("LG%s%07d", tag, seq)
}

// shot is one request the generator made.
type shot struct {
	Name string
	// Latency runs from when the request was due (open loop) or sent
	// (closed loop) to the end of the reply.
	Latency time.Duration
	// Done is when the reply had been read.
	Done   time.Time
	Status int
	Err    error
}

// runResult is one load run against one endpoint.
type runResult struct {
	Shots   []shot
	Elapsed time.Duration
	// Late counts open-loop requests that could not start on time because
	// every sender was busy; their latency includes the wait.
	Late int
}

// ok returns the requests answered 202.
func (r runResult) ok() []shot {
	var out []shot
	for _, s := range r.Shots {
		if s.Err == nil && s.Status == http.StatusAccepted {
			out = append(out, s)
		}
	}
	return out
}

// throughput is 202 answers per second.
func (r runResult) throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.ok())) / r.Elapsed.Seconds()
}

// failures describes the requests not answered 202, e.g. "503:4 error:1".
func (r runResult) failures() string {
	counts := map[string]int{}
	var order []string
	for _, s := range r.Shots {
		var k string
		switch {
		case s.Err != nil:
			k = "error"
		case s.Status != http.StatusAccepted:
			k = fmt.Sprint(s.Status)
		default:
			continue
		}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	var b bytes.Buffer
	for _, k := range order {
		fmt.Fprintf(&b, "%s:%d ", k, counts[k])
	}
	if b.Len() == 0 {
		return "none"
	}
	return string(bytes.TrimSpace(b.Bytes()))
}

// loader posts payloads to one URL, or in turn to several (replicas).
type loader struct {
	client *http.Client
	urls   []string
	tag    string
	seq    atomic.Int64
	// body makes request seq's payload; payload unless set.
	body func(name string, seq int) []byte
}

func newLoader(baseURL, tag string, conns int) *loader {
	return newSpreadLoader([]string{baseURL}, tag, conns)
}

// newSpreadLoader posts request n to baseURLs[n % len(baseURLs)].
func newSpreadLoader(baseURLs []string, tag string, conns int) *loader {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	l := &loader{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, tag: tag, body: payload}
	for _, u := range baseURLs {
		l.urls = append(l.urls, u+"/api/v1/alertmanager")
	}
	return l
}

func (l *loader) close() { l.client.CloseIdleConnections() }

// post sends the next payload; start is when it was due.
func (l *loader) post(ctx context.Context, start time.Time) shot {
	seq := int(l.seq.Add(1))
	s := shot{Name: alertName(l.tag, seq)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.urls[seq%len(l.urls)], bytes.NewReader(l.body(s.Name, seq)))
	if err != nil {
		s.Err = err
		return s
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		s.Err = err
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.Status = resp.StatusCode
	}
	s.Done = time.Now()
	s.Latency = s.Done.Sub(start)
	return s
}

// closedLoop runs conc senders back to back until d has passed or count
// requests were sent (count <= 0: no bound on count): the most the
// endpoint takes at that concurrency.
func (l *loader) closedLoop(ctx context.Context, conc int, d time.Duration, count int) runResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu    sync.Mutex
		shots []shot
		left  atomic.Int64
		wg    sync.WaitGroup
	)
	left.Store(int64(count))
	start := time.Now()
	for range conc {
		wg.Go(func() {
			var mine []shot
			for ctx.Err() == nil {
				if count > 0 && left.Add(-1) < 0 {
					break
				}
				s := l.post(ctx, time.Now())
				if ctx.Err() != nil && s.Err != nil {
					// Cut off by the end of the run, not a failure.
					break
				}
				mine = append(mine, s)
			}
			mu.Lock()
			shots = append(shots, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return runResult{Shots: shots, Elapsed: time.Since(start)}
}

// openLoop sends perSecond requests a second, evenly spaced, for d, from
// at most maxInFlight senders. Latency counts from when each request was
// due, so a slow reply that delays the next requests shows in the figures
// instead of hiding (no coordinated omission).
func (l *loader) openLoop(ctx context.Context, perSecond int, d time.Duration, maxInFlight int) runResult {
	interval := time.Second / time.Duration(perSecond)
	total := int(d / interval)
	due := make(chan time.Time, total)
	var (
		mu    sync.Mutex
		shots []shot
		wg    sync.WaitGroup
		late  atomic.Int64
	)
	for range maxInFlight {
		wg.Go(func() {
			var mine []shot
			for start := range due {
				if time.Since(start) > interval {
					late.Add(1)
				}
				mine = append(mine, l.post(ctx, start))
			}
			mu.Lock()
			shots = append(shots, mine...)
			mu.Unlock()
		})
	}
	begin := time.Now()
	for i := range total {
		at := begin.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		due <- at
	}
	close(due)
	wg.Wait()
	return runResult{Shots: shots, Elapsed: time.Since(begin), Late: int(late.Load())}
}
