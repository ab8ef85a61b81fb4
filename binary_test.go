package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// The tests in this file run the built binary, as an operator would.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// TestMain removes the binary the tests built (about 35 MB), which would
// otherwise be left in the temporary directory by every run.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// binary builds smsbridge once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "smsbridge-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "smsbridge")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// proc is a running smsbridge binary.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  *bytes.Buffer
	mu   *sync.Mutex
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// startBridge starts the binary with args and waits until it is ready.
func startBridge(t *testing.T, args ...string) *proc {
	t.Helper()
	return startBridgeAuth(t, "", "", args...)
}

// startBridgeAuth is startBridge for a server that wants basic auth.
func startBridgeAuth(t *testing.T, user, pass string, args ...string) *proc {
	t.Helper()
	p := &proc{addr: freeAddr(t), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	args = append([]string{"--web.listen-address=" + p.addr}, args...)
	p.cmd = exec.Command(binary(t), args...)
	w := lockedBuffer{mu: p.mu, buf: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_, _ = p.cmd.Process.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/-/ready", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("bridge did not become ready; log:\n%s", p.logs())
	return nil
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = p.cmd.Process.Wait()
}

// post sends body to the bridge and decodes the JSON answer.
func post(t *testing.T, url string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bridgeConfig is a config sending to smsURL with key in keyFile, routing
// everything to receiver "ops" with numbers.
func bridgeConfig(smsURL, keyFile string, numbers []string) string {
	return fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: 200
delivery:
  min_backoff: 50ms
  max_backoff: 500ms
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["%s"]
`, smsURL, keyFile, strings.Join(numbers, `", "`))
}

// TestWebConfigBasicAuth starts the binary with --web.config.file holding
// basic auth users: every endpoint then wants the password.
func TestWebConfigBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("op-pa55"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", "k"), []string{"+27830000001"}))
	web := writeFile(t, dir, "web.yml", fmt.Sprintf("basic_auth_users:\n  operator: %s\n", hash))
	p := startBridgeAuth(t, "operator", "op-pa55", "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.config.file="+web)
	for _, tc := range []struct {
		user, pass string
		want       int
	}{{"", "", 401}, {"operator", "wrong", 401}, {"operator", "op-pa55", 200}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/metrics", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("user %q: %d, want %d", tc.user, resp.StatusCode, tc.want)
		}
	}
}

// TestPprofFlag: the profiler is served only when asked for.
func TestPprofFlag(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	for _, tc := range []struct {
		flag string
		want int
	}{{"--web.enable-pprof", 200}, {"--no-web.enable-pprof", 404}} {
		dir := t.TempDir()
		cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", "k"), []string{"+27830000001"}))
		p := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), tc.flag)
		resp, err := http.Get("http://" + p.addr + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: /debug/pprof/cmdline %d, want %d", tc.flag, resp.StatusCode, tc.want)
		}
		p.kill(t)
	}
}
