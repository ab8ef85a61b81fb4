package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/internal/secret"
)

// now is the receiver's clock in every test; Check takes it as an argument,
// so nothing here depends on the real time.
var now = time.Unix(1_700_000_000, 0)

const (
	tok  = "tok-3f9a1c-right"
	body = `{"action":"completed","workflow_run":{"conclusion":"failure"}}`
)

// whKey is a Standard Webhooks key; whSecret its serialised form.
var (
	whKey    = []byte("0123456789abcdef01234567")
	whSecret = "whsec_" + base64.StdEncoding.EncodeToString(whKey)
)

func hexHMAC(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func stdSig(key []byte, id string, ts int64, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + msg))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// hdr builds a header from name/value pairs; Add keeps repeated names.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// std returns Standard Webhooks headers for a message sent at ts and signed
// with the given signature header values.
func std(id string, ts int64, sigs ...string) http.Header {
	h := hdr("webhook-id", id, "webhook-timestamp", strconv.FormatInt(ts, 10))
	for _, s := range sigs {
		h.Add("webhook-signature", s)
	}
	return h
}

func mustBuild(t *testing.T, c Config) *Verifier {
	t.Helper()
	v, err := c.Build()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return v
}

func wantReason(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("want accepted, got %v", err)
		}
		return
	}
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want *Failure with reason %q, got %v", want, err)
	}
	if f.Reason != want {
		t.Fatalf("reason = %q (%v), want %q", f.Reason, err, want)
	}
	if !strings.HasPrefix(err.Error(), "auth: ") {
		t.Fatalf("error %q lacks the auth: prefix", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	bearer := Config{Type: "bearer", Secret: tok}
	basicCfg := Config{Type: "basic", Username: "am", Password: tok}
	token := Config{Type: "token", Header: "x-gitlab-token", Secret: tok}
	github := Config{Type: "hmac-sha256", Header: "X-Hub-Signature-256", Prefix: "sha256=", Secret: tok}
	githubDefault := Config{Type: "hmac-sha256", Secret: tok}
	gitea := Config{Type: "hmac-sha256", Header: "X-Gitea-Signature", Secret: tok}
	sw := Config{Type: "standard-webhooks", Secret: secret.Secret(whSecret)}
	swRaw := Config{Type: "standard-webhooks", Secret: tok}
	swShort := Config{Type: "standard-webhooks", Secret: secret.Secret(whSecret), Tolerance: 30 * time.Second}

	sig := hexHMAC(tok, body)
	ts := now.Unix()
	good := stdSig(whKey, "msg_1", ts, body)
	other := stdSig([]byte("another key entirely...."), "msg_1", ts, body)

	tests := []struct {
		name string
		cfg  Config
		h    http.Header
		body string
		want string
	}{
		{"bearer right", bearer, hdr("Authorization", "Bearer "+tok), "", ""},
		{"bearer scheme any case", bearer, hdr("Authorization", "bEARER "+tok), "", ""},
		{"bearer wrong", bearer, hdr("Authorization", "Bearer "+tok+"x"), "", ReasonMismatch},
		{"bearer prefix of secret", bearer, hdr("Authorization", "Bearer "+tok[:5]), "", ReasonMismatch},
		{"bearer missing", bearer, hdr(), "", ReasonMissing},
		{"bearer empty header", bearer, hdr("Authorization", ""), "", ReasonMissing},
		{"bearer other scheme", bearer, hdr("Authorization", basic("am", tok)), "", ReasonMalformed},
		{"bearer no token", bearer, hdr("Authorization", "Bearer"), "", ReasonMalformed},
		{"bearer blank token", bearer, hdr("Authorization", "Bearer   "), "", ReasonMalformed},
		{"bearer token alone", bearer, hdr("Authorization", tok), "", ReasonMalformed},

		{"basic right", basicCfg, hdr("Authorization", basic("am", tok)), "", ""},
		{"basic wrong password", basicCfg, hdr("Authorization", basic("am", tok+"x")), "", ReasonMismatch},
		{"basic wrong user", basicCfg, hdr("Authorization", basic("AM", tok)), "", ReasonMismatch},
		{"basic missing", basicCfg, hdr(), "", ReasonMissing},
		{"basic bearer sent", basicCfg, hdr("Authorization", "Bearer "+tok), "", ReasonMalformed},
		{"basic bad base64", basicCfg, hdr("Authorization", "Basic !!!"), "", ReasonMalformed},
		{"basic no colon", basicCfg, hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("am"))), "", ReasonMalformed},

		{"token right", token, hdr("X-Gitlab-Token", tok), "", ""},
		{"token wrong", token, hdr("X-Gitlab-Token", strings.ToUpper(tok)), "", ReasonMismatch},
		{"token missing", token, hdr("Authorization", "Bearer "+tok), "", ReasonMissing},

		{"github right", github, hdr("X-Hub-Signature-256", "sha256="+sig), body, ""},
		{"github upper hex", github, hdr("X-Hub-Signature-256", "sha256="+strings.ToUpper(sig)), body, ""},
		{"github upper prefix", github, hdr("X-Hub-Signature-256", "SHA256="+sig), body, ""},
		{"github defaults", githubDefault, hdr("X-Hub-Signature-256", "sha256="+sig), body, ""},
		{"github tampered body", github, hdr("X-Hub-Signature-256", "sha256="+sig), body + " ", ReasonMismatch},
		{"github wrong key", github, hdr("X-Hub-Signature-256", "sha256="+hexHMAC("nope", body)), body, ReasonMismatch},
		{"github missing", github, hdr("X-Gitea-Signature", sig), body, ReasonMissing},
		{"github no prefix", github, hdr("X-Hub-Signature-256", sig), body, ReasonMalformed},
		{"github short value", github, hdr("X-Hub-Signature-256", "sha"), body, ReasonMalformed},
		{"github sha1 style", github, hdr("X-Hub-Signature-256", "sha1="+sig), body, ReasonMalformed},
		{"github bad hex", github, hdr("X-Hub-Signature-256", "sha256=zz"+sig[2:]), body, ReasonMalformed},
		{"github short hex", github, hdr("X-Hub-Signature-256", "sha256="+sig[:40]), body, ReasonMalformed},
		{"gitea right", gitea, hdr("X-Gitea-Signature", sig), body, ""},
		{"gitea upper hex", gitea, hdr("X-Gitea-Signature", strings.ToUpper(sig)), body, ""},
		{"gitea empty body", gitea, hdr("X-Gitea-Signature", hexHMAC(tok, "")), "", ""},
		{"gitea wrong", gitea, hdr("X-Gitea-Signature", hexHMAC(tok, body+"x")), body, ReasonMismatch},
		{"gitea missing", gitea, hdr(), body, ReasonMissing},
		{"gitea prefixed", gitea, hdr("X-Gitea-Signature", "sha256="+sig), body, ReasonMalformed},

		{"std right", sw, std("msg_1", ts, good), body, ""},
		{"std raw key", swRaw, std("msg_1", ts, stdSig([]byte(tok), "msg_1", ts, body)), body, ""},
		{"std multiple, one valid", sw, std("msg_1", ts, other+" v1a,c2lnbmF0dXJl v2,"+good[3:]+" junk v1,%%% "+good), body, ""},
		{"std multiple header lines", sw, std("msg_1", ts, other, good), body, ""},
		{"std only wrong ones", sw, std("msg_1", ts, other+" "+other), body, ReasonMismatch},
		{"std wrong key", sw, std("msg_1", ts, other), body, ReasonMismatch},
		{"std tampered body", sw, std("msg_1", ts, good), body + "\n", ReasonMismatch},
		{"std signed for other id", sw, std("msg_2", ts, good), body, ReasonMismatch},
		{"std signed for other time", sw, std("msg_1", ts+1, good), body, ReasonMismatch},
		{"std missing signature", sw, std("msg_1", ts), body, ReasonMissing},
		{"std missing id", sw, hdr("webhook-timestamp", strconv.FormatInt(ts, 10), "webhook-signature", good), body, ReasonMissing},
		{"std missing timestamp", sw, hdr("webhook-id", "msg_1", "webhook-signature", good), body, ReasonMissing},
		{"std no v1 entry", sw, std("msg_1", ts, "v1a,c2lnbmF0dXJl"), body, ReasonMalformed},
		{"std v1 not base64", sw, std("msg_1", ts, "v1,%%%"), body, ReasonMalformed},
		{"std id with dot", sw, std("msg.1", ts, stdSig(whKey, "msg.1", ts, body)), body, ReasonMalformed},
		{"std timestamp signed", sw, hdr("webhook-id", "msg_1", "webhook-timestamp", "+"+strconv.FormatInt(ts, 10), "webhook-signature", good), body, ReasonMalformed},
		{"std timestamp millis", sw, std("msg_1", ts*1000, stdSig(whKey, "msg_1", ts*1000, body)), body, ReasonExpired},
		{"std timestamp text", sw, hdr("webhook-id", "msg_1", "webhook-timestamp", "yesterday", "webhook-signature", good), body, ReasonMalformed},
		{"std timestamp overflow", sw, hdr("webhook-id", "msg_1", "webhook-timestamp", "99999999999999999999", "webhook-signature", good), body, ReasonMalformed},
		{"std old", sw, std("msg_1", ts-301, stdSig(whKey, "msg_1", ts-301, body)), body, ReasonExpired},
		{"std future", sw, std("msg_1", ts+301, stdSig(whKey, "msg_1", ts+301, body)), body, ReasonExpired},
		{"std at past edge", sw, std("msg_1", ts-300, stdSig(whKey, "msg_1", ts-300, body)), body, ""},
		{"std at future edge", sw, std("msg_1", ts+300, stdSig(whKey, "msg_1", ts+300, body)), body, ""},
		{"std custom tolerance", swShort, std("msg_1", ts-31, stdSig(whKey, "msg_1", ts-31, body)), body, ReasonExpired},
		{"std old and wrong", sw, std("msg_1", ts-3600, other), body, ReasonMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustBuild(t, tt.cfg)
			wantReason(t, v.Check(tt.h, []byte(tt.body), now), tt.want)
		})
	}
}

// TestPublishedVectors checks interoperability against the example values the
// senders publish: GitHub's webhook validation docs and the Standard Webhooks
// reference library's signing test.
func TestPublishedVectors(t *testing.T) {
	t.Parallel()
	gh := mustBuild(t, Config{Type: "hmac-sha256", Secret: "It's a Secret to Everybody"})
	wantReason(t, gh.Check(hdr("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"), []byte("Hello, World!"), now), "")

	sw := mustBuild(t, Config{Type: "standard-webhooks", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	h := hdr("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp", "1614265330",
		"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	wantReason(t, sw.Check(h, []byte(`{"test": 2432232314}`), time.Unix(1614265330, 0)), "")

	// Unpadded base64 after whsec_ is accepted too.
	unpadded := mustBuild(t, Config{Type: "standard-webhooks", Secret: secret.Secret("whsec_" + base64.RawStdEncoding.EncodeToString(whKey[:23]))})
	wantReason(t, unpadded.Check(std("m", now.Unix(), stdSig(whKey[:23], "m", now.Unix(), body)), []byte(body), now), "")
}

// TestDeliveryID: a Standard Webhooks request yields its webhook-id and
// the end of its tolerance window, when its replays stop passing Check;
// the id is the intake's to remember. The other schemes sign no id.
func TestDeliveryID(t *testing.T) {
	t.Parallel()
	v := mustBuild(t, Config{Type: "standard-webhooks", Secret: secret.Secret(whSecret), Tolerance: time.Minute})
	ts := now.Unix()
	h := std("msg_a", ts, stdSig(whKey, "msg_a", ts, body))
	wantReason(t, v.Check(h, []byte(body), now), "")
	id, exp, ok := v.DeliveryID(h)
	if !ok || id != "msg_a" || !exp.Equal(time.Unix(ts, 0).Add(time.Minute)) {
		t.Errorf("DeliveryID = %q %v %v, want msg_a until the timestamp plus the tolerance", id, exp, ok)
	}
	// A replay passes Check while it is within the window (the intake then
	// answers it as a duplicate) and not after.
	wantReason(t, v.Check(h, []byte(body), exp), "")
	wantReason(t, v.Check(h, []byte(body), exp.Add(time.Second)), ReasonExpired)

	for _, tc := range []struct {
		name string
		v    *Verifier
		h    http.Header
	}{
		{"no id", v, hdr("webhook-timestamp", "1")},
		{"bad timestamp", v, hdr("webhook-id", "m", "webhook-timestamp", "x1")},
		{"hmac", mustBuild(t, Config{Type: "hmac-sha256", Secret: "s"}), hdr("webhook-id", "m", "webhook-timestamp", "1")},
		{"bearer", mustBuild(t, Config{Type: "bearer", Secret: tok}), h},
	} {
		if id, _, ok := tc.v.DeliveryID(tc.h); ok {
			t.Errorf("%s: DeliveryID = %q, want none", tc.name, id)
		}
	}
}

func TestZeroVerifierRefuses(t *testing.T) {
	t.Parallel()
	var v Verifier
	wantReason(t, v.Check(hdr(), nil, now), ReasonMismatch)
}

func TestBuildProperties(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg       Config
		needsBody bool
		header    string
		prefix    string
	}{
		{Config{Type: "bearer", Secret: tok}, false, "", ""},
		{Config{Type: "basic", Username: "u", Password: tok}, false, "", ""},
		{Config{Type: "token", Header: "x-gitlab-token", Secret: tok}, false, "X-Gitlab-Token", ""},
		{Config{Type: "hmac-sha256", Secret: tok}, true, "X-Hub-Signature-256", "sha256="},
		{Config{Type: "hmac-sha256", Header: "x-hub-signature-256", Secret: tok}, true, "X-Hub-Signature-256", "sha256="},
		{Config{Type: "hmac-sha256", Header: "X-Hub-Signature-256", Prefix: "v1=", Secret: tok}, true, "X-Hub-Signature-256", "v1="},
		{Config{Type: "hmac-sha256", Header: "x-forgejo-signature", Secret: tok}, true, "X-Forgejo-Signature", ""},
		{Config{Type: "standard-webhooks", Secret: tok}, true, "", ""},
	}
	for _, tt := range tests {
		v := mustBuild(t, tt.cfg)
		if v.typ != tt.cfg.Type || v.NeedsBody() != tt.needsBody || v.header != tt.header || v.prefix != tt.prefix {
			t.Errorf("%+v: type %s needsBody %v header %q prefix %q", tt.cfg, v.typ, v.NeedsBody(), v.header, v.prefix)
		}
	}
	if v := mustBuild(t, Config{Type: "standard-webhooks", Secret: tok}); v.tolerance != DefaultTolerance {
		t.Errorf("default tolerance %s", v.tolerance)
	}
	if len(Reasons) != 4 || len(Types) != 5 {
		t.Errorf("Reasons %v Types %v", Reasons, Types)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const want1 = "want one of bearer, basic, token, hmac-sha256, standard-webhooks"
	tests := []struct {
		name  string
		cfg   Config
		want  string
		field string // the Config key the error names
	}{
		{"no type", Config{Secret: tok}, "auth: type missing; " + want1, "type"},
		{"unknown type", Config{Type: "oauth", Secret: tok}, `auth: type "oauth" unknown; ` + want1, "type"},
		{"type case", Config{Type: "Bearer", Secret: tok}, `auth: type "Bearer" unknown; ` + want1, "type"},
		{"bearer no secret", Config{Type: "bearer"}, "auth: secret or secret_file required", "secret"},
		{"bearer both", Config{Type: "bearer", Secret: tok, SecretFile: empty}, "auth: secret and secret_file both set; use one", "secret"},
		{"bearer missing file", Config{Type: "bearer", SecretFile: missing}, "auth: secret_file: read secret file: open " + missing + ": no such file or directory", "secret_file"},
		{"bearer empty file", Config{Type: "bearer", SecretFile: empty}, "auth: secret_file: secret file " + empty + " is empty", "secret_file"},
		{"bearer header", Config{Type: "bearer", Secret: tok, Header: "X-Token"}, "auth: header is not used by type bearer", "header"},
		{"bearer password", Config{Type: "bearer", Secret: tok, Password: tok}, "auth: password is not used by type bearer", "password"},
		{"bearer tolerance", Config{Type: "bearer", Secret: tok, Tolerance: time.Minute}, "auth: tolerance is not used by type bearer", "tolerance"},
		{"token no header", Config{Type: "token", Secret: tok}, "auth: header required for type token", "header"},
		{"token bad header", Config{Type: "token", Header: "X Token", Secret: tok}, `auth: header "X Token" is not a valid header name`, "header"},
		{"token colon header", Config{Type: "token", Header: "X-Token:", Secret: tok}, `auth: header "X-Token:" is not a valid header name`, "header"},
		{"token no secret", Config{Type: "token", Header: "X-Gitlab-Token"}, "auth: secret or secret_file required", "secret"},
		{"token prefix", Config{Type: "token", Header: "X-Gitlab-Token", Secret: tok, Prefix: "x"}, "auth: prefix is not used by type token", "prefix"},
		{"basic no username", Config{Type: "basic", Password: tok}, "auth: username required for type basic", "username"},
		{"basic colon username", Config{Type: "basic", Username: "a:b", Password: tok}, "auth: username must not contain a colon", "username"},
		{"basic no password", Config{Type: "basic", Username: "u"}, "auth: password or password_file required", "password"},
		{"basic both", Config{Type: "basic", Username: "u", Password: tok, PasswordFile: empty}, "auth: password and password_file both set; use one", "password"},
		{"basic missing file", Config{Type: "basic", Username: "u", PasswordFile: missing}, "auth: password_file: read secret file: open " + missing + ": no such file or directory", "password_file"},
		{"basic secret", Config{Type: "basic", Username: "u", Password: tok, Secret: tok}, "auth: secret is not used by type basic", "secret"},
		{"basic secret_file", Config{Type: "basic", Username: "u", Password: tok, SecretFile: empty}, "auth: secret_file is not used by type basic", "secret_file"},
		{"hmac no secret", Config{Type: "hmac-sha256"}, "auth: secret or secret_file required", "secret"},
		{"hmac bad header", Config{Type: "hmac-sha256", Header: "X-Sig\n", Secret: tok}, `auth: header "X-Sig\n" is not a valid header name`, "header"},
		{"hmac username", Config{Type: "hmac-sha256", Secret: tok, Username: "u"}, "auth: username is not used by type hmac-sha256", "username"},
		{"hmac password_file", Config{Type: "hmac-sha256", Secret: tok, PasswordFile: empty}, "auth: password_file is not used by type hmac-sha256", "password_file"},
		{"std negative tolerance", Config{Type: "standard-webhooks", Secret: tok, Tolerance: -time.Minute}, "auth: tolerance -1m0s must be positive", "tolerance"},
		{"std bad base64", Config{Type: "standard-webhooks", Secret: "whsec_not*base64"}, "auth: secret starts with whsec_ but the rest is not valid base64", "secret"},
		{"std empty key", Config{Type: "standard-webhooks", Secret: "whsec_"}, "auth: secret is empty after the whsec_ prefix", "secret"},
		{"std header", Config{Type: "standard-webhooks", Secret: tok, Header: "webhook-signature"}, "auth: header is not used by type standard-webhooks", "header"},
		{"std prefix", Config{Type: "standard-webhooks", Secret: tok, Prefix: "v1,"}, "auth: prefix is not used by type standard-webhooks", "prefix"},
		{"std no secret", Config{Type: "standard-webhooks"}, "auth: secret or secret_file required", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.cfg.Build()
			if err == nil {
				t.Fatalf("built %v, want error %q", v, tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got %q\nwant %q", err, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Errorf("error %v: ConfigError %+v, want field %q", err, ce, tt.field)
			}
			if v != nil {
				t.Fatal("verifier returned with an error")
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "ci-secret")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := `
- type: hmac-sha256
  header: X-Hub-Signature-256
  prefix: "sha256="
  secret_file: ` + file + `
- type: standard-webhooks
  secret: ` + whSecret + `
  tolerance: 2m
- type: basic
  username: alertmanager
  password: ` + tok + `
`
	var cfgs []Config
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&cfgs); err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 3 || cfgs[1].Tolerance != 2*time.Minute || string(cfgs[2].Password) != tok || cfgs[0].SecretFile != file {
		t.Fatalf("decoded %+v", cfgs)
	}
	gh := mustBuild(t, cfgs[0])
	wantReason(t, gh.Check(hdr("X-Hub-Signature-256", "sha256="+hexHMAC(tok, body)), []byte(body), now), "")
	sw := mustBuild(t, cfgs[1])
	wantReason(t, sw.Check(std("m", now.Unix()-150, stdSig(whKey, "m", now.Unix()-150, body)), []byte(body), now), ReasonExpired)
	ba := mustBuild(t, cfgs[2])
	wantReason(t, ba.Check(hdr("Authorization", basic("alertmanager", tok)), nil, now), "")

	var bad Config
	dec = yaml.NewDecoder(strings.NewReader("type: bearer\nsecrets: x\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&bad); err == nil {
		t.Fatal("unknown field accepted")
	}
}
