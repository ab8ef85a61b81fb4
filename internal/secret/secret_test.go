package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const plain = "hunter2-very-secret"

type holder struct {
	Name   string `yaml:"name" json:"name"`
	Token  Secret `yaml:"token" json:"token"`
	hidden Secret
}

func TestPrintingNeverReveals(t *testing.T) {
	s := Secret(plain)
	h := holder{Name: "x", Token: s, hidden: s}
	outputs := map[string]string{
		"String":   s.String(),
		"GoString": s.GoString(),
		"%s":       fmt.Sprintf("%s", s),
		"%v":       fmt.Sprintf("%v", s),
		"%+v":      fmt.Sprintf("%+v", s),
		"%#v":      fmt.Sprintf("%#v", s),
		"%q":       fmt.Sprintf("%q", s),
		"%x":       fmt.Sprintf("%x", s),
		"%10s":     fmt.Sprintf("%10s", s),
		"Sprint":   fmt.Sprint(s),
		"Println":  fmt.Sprintln(s),
		"struct":   fmt.Sprintf("%v %+v", h.Token, &h.Token),
		"exported": fmt.Sprintf("%v %+v %#v", holder{Token: s}, &holder{Token: s}, holder{Token: s}),
	}
	for name, out := range outputs {
		if strings.Contains(out, plain) {
			t.Errorf("%s reveals the secret: %q", name, out)
		}
		if !strings.Contains(out, Mask) {
			t.Errorf("%s = %q, want the mask", name, out)
		}
	}
	if string(h.hidden) != plain {
		t.Fatal("conversion to string must give the plain value")
	}
}

func TestEmptyPrintsEmpty(t *testing.T) {
	var s Secret
	for _, out := range []string{s.String(), s.GoString(), fmt.Sprintf("%v", s), fmt.Sprintf("%#v", s)} {
		if out != "" {
			t.Errorf("empty secret printed %q, want \"\"", out)
		}
	}
	b, err := json.Marshal(s)
	if err != nil || string(b) != `""` {
		t.Errorf("json of empty = %s, %v", b, err)
	}
}

func TestMarshalMasks(t *testing.T) {
	h := holder{Name: "src", Token: Secret(plain)}
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := Secret(plain).MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json escapes < and > in any output, so decode before looking.
	var back map[string]string
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"yaml": string(y), "json": back["token"], "text": string(txt)} {
		if strings.Contains(out, plain) || !strings.Contains(out, Mask) {
			t.Errorf("%s marshal = %q", name, out)
		}
	}
	if want := "name: src\ntoken: <secret>\n"; string(y) != want {
		t.Errorf("yaml = %q, want %q", y, want)
	}
	if want := `{"name":"src","token":"\u003csecret\u003e"}`; string(j) != want {
		t.Errorf("json = %s, want %s", j, want)
	}
}

func TestSlogMasks(t *testing.T) {
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("msg", "token", Secret(plain), "h", holder{Token: Secret(plain)})
	}
	if strings.Contains(buf.String(), plain) {
		t.Errorf("log reveals the secret: %s", buf.String())
	}
	if strings.Count(buf.String(), "secret") < 2 {
		t.Errorf("log lacks the mask: %s", buf.String())
	}
}

func TestUnmarshalYAML(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Secret
		wantErr string
	}{
		{name: "plain", in: "token: abc def", want: "abc def"},
		{name: "quoted", in: `token: "  x:y  "`, want: "  x:y  "},
		{name: "number keeps text", in: "token: 0x1F", want: "0x1F"},
		{name: "null", in: "token: ~", want: ""},
		{name: "absent", in: "name: n", want: ""},
		{name: "mapping", in: "token: {a: " + plain + "}", wantErr: "line 1: secret must be a string"},
		{name: "sequence", in: "token: [" + plain + "]", wantErr: "line 1: secret must be a string"},
		{name: "bad binary", in: "token: !!binary '" + plain + "!'", wantErr: "line 1: secret cannot be decoded as a string"},
		{name: "mask pasted back", in: "token: <secret>", wantErr: "secret is the mask"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h holder
			err := yaml.Unmarshal([]byte(tt.in), &h)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), plain) {
					t.Fatalf("error reveals the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Token != tt.want {
				t.Fatalf("got %q, want %q", string(h.Token), string(tt.want))
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lf := write("lf", plain+"\n")
	crlf := write("crlf", plain+"\r\n\r\n")
	bare := write("bare", plain)
	inner := write("inner", " "+plain+" \n")
	empty := write("empty", "\n")
	big := write("big", strings.Repeat("a", MaxFileSize+1))
	exact := write("exact", strings.Repeat("a", MaxFileSize))
	missing := filepath.Join(dir, "missing")
	replace := write("replace", "REPLACE-WITH-THE-SMS-API-KEY\n")
	replaceUnderscore := write("replace_", "REPLACE_ME")
	replaceBare := write("replace-bare", "REPLACE\n")
	notPlaceholder := write("not-placeholder", "REPLACEMENT-is-a-word-but-this-is-a-key")

	tests := []struct {
		name    string
		inline  Secret
		file    string
		want    Secret
		wantErr string
		is      error
	}{
		{name: "inline", inline: plain, want: plain},
		{name: "file lf", file: lf, want: plain},
		{name: "file crlf", file: crlf, want: plain},
		{name: "file bare", file: bare, want: plain},
		{name: "inner spaces kept", file: inner, want: " " + plain + " "},
		{name: "exactly max", file: exact, want: Secret(strings.Repeat("a", MaxFileSize))},
		{name: "both", inline: plain, file: lf, is: ErrBothSet, wantErr: "both"},
		{name: "neither", is: ErrNotSet, wantErr: "no secret given"},
		{name: "missing file", file: missing, wantErr: "read secret file: open " + missing},
		{name: "directory", file: dir, wantErr: "read secret file: read " + dir},
		{name: "empty file", file: empty, wantErr: "secret file " + empty + " is empty"},
		{name: "too large", file: big, wantErr: "secret file " + big + " is larger than 65536 bytes"},
		// An example's placeholder, applied as copied, cannot run a bridge.
		{name: "placeholder file", file: replace, is: ErrPlaceholder,
			wantErr: "secret file " + replace + ` holds a placeholder (it starts with "REPLACE"), not a real value: put the real secret in it`},
		{name: "placeholder with underscore", file: replaceUnderscore, is: ErrPlaceholder, wantErr: "placeholder"},
		{name: "bare placeholder", file: replaceBare, is: ErrPlaceholder, wantErr: "placeholder"},
		{name: "inline placeholder", inline: "REPLACE-WITH-A-RANDOM-TOKEN", is: ErrPlaceholder, wantErr: "inline secret holds a placeholder"},
		{name: "a word that starts like it", file: notPlaceholder, want: "REPLACEMENT-is-a-word-but-this-is-a-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.inline, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Fatalf("err = %v, want errors.Is %v", err, tt.is)
				}
				if strings.Contains(err.Error(), plain) {
					t.Fatalf("error reveals the secret: %v", err)
				}
				if got != "" {
					t.Fatalf("got a value with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}
