package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/internal/secret"
)

// leaky is the known secret. It is valid base64 after whsec_, so it can
// serve as every scheme's secret.
const leaky = "S3cretNeverPrintMe42xyz="

// TestNoSecretLeaks builds every scheme with a known secret, inline and from
// a file, drives every failure path, and asserts that neither the secret nor
// anything derived from it shows up in errors, formatted values, logs or
// marshalled output.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(leaky+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(leaky)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(leaky))
	forbidden := []string{
		leaky,
		hex.EncodeToString(digest[:]),
		fmt.Sprint(digest[:]),
		base64.StdEncoding.EncodeToString(digest[:]),
		base64.StdEncoding.EncodeToString([]byte("am:" + leaky)),
		fmt.Sprint([]byte(leaky)),
		fmt.Sprint(key),
		hex.EncodeToString(key),
		hexHMAC(leaky, body),
		strings.TrimPrefix(stdSig([]byte(leaky), "m", now.Unix(), body), "v1,"),
		strings.TrimPrefix(stdSig(key, "m", now.Unix(), body), "v1,"),
	}

	// Requests that present the secret, or something close to it, in the
	// wrong way, so an error echoing a header value would be caught.
	ts := now.Unix()
	stdHeaders := func(id string, at int64, k []byte) http.Header {
		return std(id, at, stdSig(k, id, at, body))
	}
	failing := []http.Header{
		hdr(),
		hdr("Authorization", leaky),
		hdr("Authorization", "Bearer "+leaky+"x"),
		hdr("Authorization", "Bearer"),
		hdr("Authorization", basic("am", leaky+"x")),
		hdr("Authorization", basic("x", leaky)),
		hdr("Authorization", "Basic "+leaky+"!"),
		hdr("X-Token", leaky+"x"),
		hdr("X-Hub-Signature-256", leaky),
		hdr("X-Hub-Signature-256", "sha256="+leaky),
		hdr("X-Hub-Signature-256", "sha256="+hexHMAC(leaky, body+"x")),
		std("m", ts, "v1,"+leaky),
		std("m", ts, leaky),
		std("m.1", ts, "v1,"+leaky),
		hdr("webhook-id", "m", "webhook-timestamp", leaky, "webhook-signature", "v1,"+leaky),
		stdHeaders("m", ts, []byte("wrong")),
		stdHeaders("m", ts-3600, key),
		stdHeaders("m", ts-3600, []byte(leaky)),
	}

	configs := []Config{
		{Type: "bearer", Secret: leaky},
		{Type: "bearer", SecretFile: file},
		{Type: "basic", Username: "am", Password: leaky},
		{Type: "basic", Username: "am", PasswordFile: file},
		{Type: "token", Header: "X-Token", Secret: leaky},
		{Type: "token", Header: "X-Token", SecretFile: file},
		{Type: "hmac-sha256", Secret: leaky},
		{Type: "hmac-sha256", Header: "X-Hub-Signature-256", SecretFile: file},
		{Type: "standard-webhooks", Secret: leaky},
		{Type: "standard-webhooks", Secret: "whsec_" + leaky},
		{Type: "standard-webhooks", SecretFile: file, Tolerance: time.Minute},
	}

	var outputs []string
	record := func(what string, a ...any) {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			outputs = append(outputs, what+" "+verb+": "+fmt.Sprintf(verb, a...))
		}
	}
	marshal := func(what string, x any) {
		y, err := yaml.Marshal(x)
		if err != nil {
			t.Fatalf("yaml %s: %v", what, err)
		}
		j, err := json.Marshal(x)
		if err != nil {
			t.Fatalf("json %s: %v", what, err)
		}
		outputs = append(outputs, what+" yaml: "+string(y), what+" json: "+string(j))
	}
	var logs bytes.Buffer
	loggers := []*slog.Logger{slog.New(slog.NewTextHandler(&logs, nil)), slog.New(slog.NewJSONHandler(&logs, nil))}

	reasons := map[string]bool{}
	for _, cfg := range configs {
		v := mustBuild(t, cfg)
		record("config", cfg)
		record("config ptr", &cfg)
		record("verifier", v)
		record("verifier value", *v)
		outputs = append(outputs, "verifier GoString: "+v.GoString(), "verifier String: "+v.String())
		marshal("config", cfg)
		marshal("verifier", v)
		for _, l := range loggers {
			l.Info("built", "auth", cfg, "verifier", v)
		}

		// The right credential must pass, or the failure paths prove nothing.
		if err := v.Check(rightRequest(t, cfg, key), []byte(body), now); err != nil {
			t.Fatalf("%s: right request refused: %v", cfg.Type, err)
		}
		for _, h := range failing {
			err := v.Check(h, []byte(body), now)
			if err == nil {
				t.Fatalf("%s: request %v accepted", cfg.Type, h)
			}
			reasons[err.(*Failure).Reason] = true
			record("error", err)
			outputs = append(outputs, "error text: "+err.Error())
			for _, l := range loggers {
				l.Warn("refused", "err", err)
			}
		}
	}
	for _, r := range Reasons {
		if !reasons[r] {
			t.Errorf("failure path %q not exercised", r)
		}
	}

	// Configuration errors for configs that carry the secret.
	broken := []Config{
		{Type: "nope", Secret: leaky},
		{Type: "bearer", Secret: leaky, SecretFile: file},
		{Type: "bearer", Secret: leaky, Header: "X"},
		{Type: "basic", Username: "am", Password: leaky, Secret: leaky},
		{Type: "token", Secret: leaky},
		{Type: "standard-webhooks", Secret: "whsec_" + leaky + "!!"},
		{Type: "standard-webhooks", Secret: leaky, Tolerance: -1},
		{Type: "bearer", SecretFile: filepath.Dir(file)},
	}
	for _, cfg := range broken {
		_, err := cfg.Build()
		if err == nil {
			t.Fatalf("%+v built", cfg)
		}
		outputs = append(outputs, "build error: "+err.Error())
		record("build error", err)
	}
	outputs = append(outputs, "logs: "+logs.String())

	for _, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("secret material %q leaked in %s", f, out)
			}
		}
	}
	if !strings.Contains(logs.String(), secret.Mask) {
		t.Error("logs lack the mask; the log check proves nothing")
	}
}

// rightRequest returns headers that pass cfg, so the leak test knows each
// verifier is actually keyed with the known secret.
func rightRequest(t *testing.T, cfg Config, decoded []byte) http.Header {
	t.Helper()
	switch cfg.Type {
	case TypeBearer:
		return hdr("Authorization", "Bearer "+leaky)
	case TypeBasic:
		return hdr("Authorization", basic("am", leaky))
	case TypeToken:
		return hdr("X-Token", leaky)
	case TypeHMACSHA256:
		return hdr("X-Hub-Signature-256", "sha256="+hexHMAC(leaky, body))
	case TypeStandardWebhooks:
		// Without the whsec_ prefix (inline or in the file) the value is the
		// raw key.
		k := []byte(leaky)
		if strings.HasPrefix(string(cfg.Secret), "whsec_") {
			k = decoded
		}
		return std("m", now.Unix(), stdSig(k, "m", now.Unix(), body))
	}
	t.Fatalf("no right request for %s", cfg.Type)
	return nil
}
