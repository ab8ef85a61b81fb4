package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestStartFailsBeforeReady: a bridge that cannot serve (its port is
// taken, its web config is broken) exits non-zero with the reason, before
// it logs that it is ready and before it queues a handoff notice.
func TestStartFailsBeforeReady(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	t.Cleanup(fake.Close)
	tests := []struct {
		name string
		// args get the directory of the test's files.
		args func(dir string) []string
		want []string
	}{
		{"port in use", func(string) []string { return []string{"--web.listen-address=" + busy.Addr().String()} },
			[]string{"--web.listen-address=" + busy.Addr().String(), "address already in use"}},
		{"second port in use", func(string) []string {
			return []string{"--web.listen-address=" + freeAddr(t), "--web.listen-address=" + busy.Addr().String()}
		}, []string{"address already in use"}},
		{"broken web config", func(dir string) []string {
			return []string{"--web.listen-address=" + freeAddr(t), "--web.config.file=" + writeFile(t, dir, "web.yml", "tls_server_config:\n  cert_file: nope.crt\n")}
		}, []string{"--web.config.file", "key_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// A list whose handoff was an hour ago: a bridge that starts
			// queues a notice for it at once.
			start := time.Now().UTC().Add(-7*24*time.Hour - time.Hour).Format("2006-01-02T15:04")
			cfg := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
route:
  receiver: db
receivers:
  - name: db
    oncall: [db-primary]
oncall:
  - name: db-primary
    notify_handoff: true
    rotation: {members: [alice, bob], shift: 1w, start: "%s"}
`, fake.URL, writeFile(t, dir, "key", "k"), start))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary(t), append([]string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data")}, tc.args(dir)...)...)
			out, err := cmd.CombinedOutput()
			if err == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("exit %v, want status 1; log:\n%s", err, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			for _, never := range []string{"smsbridge is ready", "handoff notice queued"} {
				if strings.Contains(string(out), never) {
					t.Errorf("log says %q though the bridge never served:\n%s", never, out)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := len(fake.Messages()); n != 0 {
			t.Errorf("the fake got %d messages", n)
		}
	})
}

// TestListen: every address is bound before the bridge starts, and a
// failure names the address and closes what was bound already.
func TestListen(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	free := freeAddr(t)
	tests := []struct {
		name  string
		addrs []string
		want  string // "" for success
	}{
		{"one", []string{"127.0.0.1:0"}, ""},
		{"two", []string{"127.0.0.1:0", "127.0.0.1:0"}, ""},
		{"busy", []string{busy.Addr().String()}, "cannot listen on --web.listen-address=" + busy.Addr().String()},
		{"busy second", []string{free, busy.Addr().String()}, "address already in use"},
		{"bad vsock port", []string{"vsock://:port"}, "vsock"},
		{"none", nil, "no --web.listen-address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addrs := tc.addrs
			ls, err := listen(&web.FlagConfig{WebListenAddresses: &addrs}, slog.New(slog.DiscardHandler))
			defer closeListeners(ls)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("listen: %v", err)
			case tc.want == "" && len(ls) != len(addrs):
				t.Errorf("%d listeners for %d addresses", len(ls), len(addrs))
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("listen = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// The first address of "busy second" was released again.
	l, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("an address bound before the failure was kept: %v", err)
	}
	l.Close()
}
