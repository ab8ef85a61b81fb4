package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// pprofEnv names the environment variable the profiling build reads: the
// loopback address to serve net/http/pprof on.
const pprofEnv = "SMSBRIDGE_LOADGEN_PPROF"

// pprofOverlay is added to package main at build time (go build -overlay)
// when the tool is asked to profile: the bridge has no pprof endpoint of its
// own, and the tool must not change the repository to get one.
const pprofOverlay = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("` + pprofEnv + `"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// buildBridge builds the bridge of the module the tool runs in into dir,
// with a pprof listener added when profile is set.
func buildBridge(ctx context.Context, dir string, profile bool) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the smsbridge module; run from the repository or pass -bin")
	}
	root := filepath.Dir(gomod)
	bin := filepath.Join(dir, "smsbridge")
	args := []string{"build", "-o", bin}
	if profile {
		src := filepath.Join(dir, "loadgen_pprof.go")
		if err := os.WriteFile(src, []byte(pprofOverlay), 0o600); err != nil {
			return "", err
		}
		ov, err := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(root, "zz_loadgen_pprof.go"): src},
		})
		if err != nil {
			return "", err
		}
		ovPath := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(ovPath, ov, 0o600); err != nil {
			return "", err
		}
		args = append(args, "-overlay", ovPath)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// bridgeParams is one bridge configuration.
type bridgeParams struct {
	ProviderURL string
	KeyFile     string
	Timeout     time.Duration
	RateLimit   float64
	BatchSize   int
	Workers     int
	Numbers     []string
	// Env is added to the bridge's environment.
	Env []string
	// DSNFile, when set, puts the store in that PostgreSQL database.
	DSNFile string
	// Heavy routes every notification to three receivers (heavyRoutes)
	// with Numbers each, instead of one.
	Heavy bool
}

// heavyReceivers are the receivers of the heavy config: every alert of
// heavyPayload matches all three routes.
var heavyReceivers = []struct{ name, matcher string }{
	{"db-oncall", `team=~"db|web|net"`},
	{"ops", `severity="critical"`},
	{"platform", `env="prod"`},
}

func (b bridgeParams) yaml() string {
	storage := ""
	if b.DSNFile != "" {
		storage = fmt.Sprintf("storage:\n  driver: postgres\n  dsn_file: %s\n", b.DSNFile)
	}
	return storage + fmt.Sprintf(`# Written by internal/loadgen for one measurement.
sms:
  url: %s
  api_key_file: %s
  timeout: %s
  rate_limit: %g
  batch_size: %d
delivery:
  workers: %d
  min_backoff: 100ms
  max_backoff: 2s
%s`, b.ProviderURL, b.KeyFile, b.Timeout, b.RateLimit, b.BatchSize, b.Workers, b.routes())
}

// routes is the config's route and receivers.
func (b bridgeParams) routes() string {
	if !b.Heavy {
		return fmt.Sprintf("route:\n  receiver: ops\nreceivers:\n  - name: ops\n    numbers: [\"%s\"]\n", strings.Join(b.Numbers, `", "`))
	}
	var r, recv strings.Builder
	r.WriteString("route:\n  receiver: ops\n  routes:\n")
	recv.WriteString("receivers:\n")
	for i, h := range heavyReceivers {
		fmt.Fprintf(&r, "    - matchers: ['%s']\n      receiver: %s\n      continue: true\n", h.matcher, h.name)
		// Each receiver its own numbers: len(Numbers) deliveries per
		// receiver.
		nums := make([]string, len(b.Numbers))
		for k := range nums {
			nums[k] = fmt.Sprintf("+2784%07d", 1000000+i*1000+k)
		}
		fmt.Fprintf(&recv, "  - name: %s\n    numbers: [\"%s\"]\n", h.name, strings.Join(nums, `", "`))
	}
	return r.String() + recv.String()
}

// numbers returns n distinct valid numbers.
func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+2783%07d", 1000000+i)
	}
	return out
}

// bridgeProc is a running bridge.
type bridgeProc struct {
	cmd       *exec.Cmd
	URL       string // http://127.0.0.1:port
	PprofAddr string // empty unless profiling
	logPath   string
	logFile   *os.File
	exited    chan struct{}
	// args and env start the process again (restart).
	args, env []string
	bin       string
}

// startBridge starts bin with a fresh store in dir and waits until it is
// ready.
func startBridge(ctx context.Context, bin, dir string, p bridgeParams, profile bool) (*bridgeProc, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "api-key")
	if err := os.WriteFile(key, []byte(providerKey), 0o600); err != nil {
		return nil, err
	}
	p.KeyFile = key
	cfg := filepath.Join(dir, "smsbridge.yml")
	if err := os.WriteFile(cfg, []byte(p.yaml()), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	b := &bridgeProc{URL: "http://" + addr, logPath: filepath.Join(dir, "bridge.log"), bin: bin}
	b.args = []string{
		"--config.file=" + cfg,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn"}
	b.env = append(os.Environ(), p.Env...)
	if profile {
		if b.PprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		b.env = append(b.env, pprofEnv+"="+b.PprofAddr)
	}
	if err := b.launch(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// launch starts the process and waits until it is ready.
func (b *bridgeProc) launch(ctx context.Context) error {
	var err error
	b.logFile, err = os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b.exited = make(chan struct{})
	b.cmd = exec.Command(b.bin, b.args...)
	b.cmd.Stdout, b.cmd.Stderr = b.logFile, b.logFile
	b.cmd.Env = b.env
	dieWithParent(b.cmd)
	if err := b.cmd.Start(); err != nil {
		b.logFile.Close()
		return fmt.Errorf("start bridge: %w", err)
	}
	exited := b.exited
	go func() {
		_ = b.cmd.Wait()
		close(exited)
	}()
	if err := waitReady(ctx, b.URL+"/-/ready", b.exited); err != nil {
		b.stop()
		return fmt.Errorf("bridge: %w\n%s", err, b.logTail())
	}
	return nil
}

// restart starts a stopped bridge again, on the same store and address.
func (b *bridgeProc) restart(ctx context.Context) error { return b.launch(ctx) }

// waitReady polls url until it answers 200, for at most 30 s.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (b *bridgeProc) pid() int { return b.cmd.Process.Pid }

// stop asks the bridge to shut down and kills it if it has not within 15 s.
func (b *bridgeProc) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	b.logFile.Close()
}

// logTail is the end of the bridge's log, for error reports.
func (b *bridgeProc) logTail() string {
	raw, _ := os.ReadFile(b.logPath)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// logProblems counts lines of the bridge's log that mention a panic or
// are errors.
func (b *bridgeProc) logProblems() (panics, errs int) {
	raw, _ := os.ReadFile(b.logPath)
	for line := range bytes.Lines(raw) {
		if bytes.Contains(line, []byte("panic")) {
			panics++
		}
		if bytes.Contains(line, []byte("level=ERROR")) {
			errs++
		}
	}
	return panics, errs
}

// profileCPU fetches a CPU profile of d from the bridge's pprof listener
// into path.
func (b *bridgeProc) profileCPU(ctx context.Context, d time.Duration, path string) error {
	return fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.PprofAddr, int(d.Seconds())), path)
}

// profileHeap fetches a heap profile into path.
func (b *bridgeProc) profileHeap(ctx context.Context, path string) error {
	return fetch(ctx, "http://"+b.PprofAddr+"/debug/pprof/heap", path)
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetch profile: %w", err)
	}
	return f.Close()
}

// freeAddr returns a loopback address nobody listens on at the moment.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// scrape reads the bridge's /metrics into a map from series (name and
// labels as written) to value.
func scrape(ctx context.Context, baseURL string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// commitStats are the store's group commits during a run, from the
// difference of two scrapes.
type commitStats struct {
	Commits        float64
	MeanBatch      float64
	MeanDurationMS float64
}

func commitDelta(before, after map[string]float64) commitStats {
	d := func(k string) float64 { return after[k] - before[k] }
	c := commitStats{Commits: d("smsbridge_outbox_commit_batch_size_count")}
	if c.Commits > 0 {
		c.MeanBatch = d("smsbridge_outbox_commit_batch_size_sum") / c.Commits
	}
	if n := d("smsbridge_outbox_commit_duration_seconds_count"); n > 0 {
		c.MeanDurationMS = 1000 * d("smsbridge_outbox_commit_duration_seconds_sum") / n
	}
	return c
}
