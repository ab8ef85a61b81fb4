package examples

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/generation"
)

// secretDir is where every example mounts the bridge's secret files.
const secretDir = "/etc/smsbridge/secrets/"

// yamlFiles lists every .yml and .yaml file under the examples directory.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yml" || ext == ".yaml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// decodeAll decodes every document of a YAML stream into generic values,
// which also rejects duplicate keys.
func decodeAll(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

func TestEveryYAMLFileParses(t *testing.T) {
	files := yamlFiles(t)
	// A floor, so that a moved directory cannot make this test vacuous.
	if len(files) < 12 {
		t.Fatalf("found only %d YAML files: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := decodeAll(data)
			if err != nil {
				t.Fatalf("invalid YAML: %v", err)
			}
			if len(docs) == 0 || docs[0] == nil {
				t.Fatal("no document")
			}
		})
	}
}

func TestDecodeAllRejectsBrokenYAML(t *testing.T) {
	for name, in := range map[string]string{
		"bad indentation":    "a:\n  b: 1\n c: 2\n",
		"duplicate key":      "a: 1\na: 2\n",
		"second doc invalid": "a: 1\n---\n[\n",
	} {
		if _, err := decodeAll([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Minimal Kubernetes object shapes: only the fields the checks read.
type (
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	item struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
	}
	projectedRef struct {
		Name  string `yaml:"name"`
		Items []item `yaml:"items"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	container struct {
		Image           string   `yaml:"image"`
		ImagePullPolicy string   `yaml:"imagePullPolicy"`
		Args            []string `yaml:"args"`
		Ports           []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe  probe `yaml:"livenessProbe"`
		ReadinessProbe probe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	}
	volume struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		Projected *struct {
			Sources []struct {
				ConfigMap *projectedRef `yaml:"configMap"`
				Secret    *projectedRef `yaml:"secret"`
			} `yaml:"sources"`
		} `yaml:"projected"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	}
	deployment struct {
		Kind     string `yaml:"kind"`
		Metadata meta   `yaml:"metadata"`
		Spec     struct {
			Replicas int `yaml:"replicas"`
			Strategy struct {
				Type string `yaml:"type"`
			} `yaml:"strategy"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata meta `yaml:"metadata"`
				Spec     struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
						FSGroup      int  `yaml:"fsGroup"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
					Volumes    []volume    `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	service struct {
		Kind     string `yaml:"kind"`
		Metadata meta   `yaml:"metadata"`
		Spec     struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name       string `yaml:"name"`
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	serviceMonitor struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	dataObject struct {
		Kind       string            `yaml:"kind"`
		Metadata   meta              `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
		Spec       struct {
			AccessModes []string `yaml:"accessModes"`
		} `yaml:"spec"`
	}
)

// subset reports whether every pair of sub is in super.
func subset(sub, super map[string]string) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return len(sub) > 0
}

// secretFileRE finds the secret file settings of an smsbridge.yml.
var secretFileRE = regexp.MustCompile(`(?m)^\s*(?:api_key_file|secret_file|password_file|dsn_file):\s*(\S+)\s*$`)

// compileConfig loads and builds an smsbridge.yml with the bridge's own
// config and generation packages, as `smsbridge check-config` would. The secret files it
// names under /etc/smsbridge/secrets/ are stood in for by files in a
// temporary directory. It returns the loaded file and the secret keys
// (file names) it needs.
func compileConfig(t *testing.T, data []byte) (*config.File, []string) {
	t.Helper()
	dir := t.TempDir()
	var keys []string
	for _, m := range secretFileRE.FindAllSubmatch(data, -1) {
		p := string(m[1])
		key, ok := strings.CutPrefix(p, secretDir)
		if !ok || key == "" || strings.Contains(key, "/") {
			t.Errorf("secret file %s is not a file in %s, where the examples mount the Secret", p, secretDir)
			continue
		}
		keys = append(keys, key)
		content := "example-" + key
		if strings.Contains(key, "dsn") {
			// The DSN is parsed as the driver parses it.
			content = "postgres://smsbridge:example@db.example/smsbridge"
		}
		if err := os.WriteFile(filepath.Join(dir, key), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) == 0 {
		t.Fatal("the config names no secret file; the examples keep every secret out of the config")
	}
	f, err := config.Load(bytes.ReplaceAll(data, []byte(secretDir), []byte(dir+"/")))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if _, err := generation.Build(f, generation.Options{}); err != nil {
		t.Fatalf("build: %v", err)
	}
	slices.Sort(keys)
	return f, slices.Compact(keys)
}

func TestCompileConfigCatchesMistakes(t *testing.T) {
	// compileConfig's checks are only worth something if the config
	// package refuses the edits that break an example; prove it on the
	// GitHub example with the same load-then-compile path.
	good, err := os.ReadFile("github/smsbridge.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(string) string{
		"unknown key": func(s string) string {
			return strings.Replace(s, "preset: github", "preset: github\n    presett: x", 1)
		},
		"unknown preset": func(s string) string { return strings.Replace(s, "preset: github", "preset: githubb", 1) },
		"unknown auth":   func(s string) string { return strings.Replace(s, "type: hmac-sha256", "type: hmac", 1) },
		"bad number":     func(s string) string { return strings.Replace(s, `"+27831234569"`, `"0831234569x"`, 1) },
		"missing secret": func(s string) string { return strings.Replace(s, "github-webhook-secret", "no-such-file", 1) },
		"unknown receiver": func(s string) string {
			return strings.Replace(s, "receiver: ci-oncall", "receiver: nobody", 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, key := range []string{"api-key", "github-webhook-secret", "ci-token"} {
				if err := os.WriteFile(filepath.Join(dir, key), []byte("x\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			data := strings.ReplaceAll(edit(string(good)), secretDir, dir+"/")
			if data == strings.ReplaceAll(string(good), secretDir, dir+"/") {
				t.Fatal("the edit changed nothing; the example no longer has what it edits")
			}
			f, err := config.Load([]byte(data))
			if err == nil {
				_, err = generation.Build(f, generation.Options{})
			}
			if err == nil {
				t.Fatal("the bridge accepted a broken config")
			}
		})
	}
}

// kubernetes loads the manifests, keyed by kind.
type kubernetes struct {
	deployment deployment
	service    service
	monitor    serviceMonitor
	configMap  dataObject
	secret     dataObject
	pvc        dataObject
}

func loadKubernetes(t *testing.T) kubernetes {
	t.Helper()
	var k kubernetes
	readYAML(t, "kubernetes/deployment.yaml", &k.deployment)
	readYAML(t, "kubernetes/service.yaml", &k.service)
	readYAML(t, "kubernetes/servicemonitor.yaml", &k.monitor)
	readYAML(t, "kubernetes/configmap.yaml", &k.configMap)
	readYAML(t, "kubernetes/secret.yaml", &k.secret)
	readYAML(t, "kubernetes/pvc.yaml", &k.pvc)
	for file, kind := range map[string]string{
		"deployment": k.deployment.Kind, "service": k.service.Kind, "servicemonitor": k.monitor.Kind,
		"configmap": k.configMap.Kind, "secret": k.secret.Kind, "pvc": k.pvc.Kind,
	} {
		want := map[string]string{"deployment": "Deployment", "service": "Service", "servicemonitor": "ServiceMonitor",
			"configmap": "ConfigMap", "secret": "Secret", "pvc": "PersistentVolumeClaim"}[file]
		if kind != want {
			t.Fatalf("kubernetes/%s.yaml: kind %q, want %q", file, kind, want)
		}
	}
	return k
}

func TestKubernetesKustomizationListsEveryManifest(t *testing.T) {
	var kz struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kubernetes/kustomization.yaml", &kz)
	matches, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range matches {
		if b := filepath.Base(m); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(kz.Resources)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want %v", got, want)
	}
}

func TestKubernetesDeployment(t *testing.T) {
	k := loadKubernetes(t)
	d := k.deployment.Spec
	if d.Replicas != 1 {
		t.Errorf("replicas %d: the SQLite outbox has one writer", d.Replicas)
	}
	if d.Strategy.Type != "Recreate" {
		t.Errorf("strategy %q: a rolling update would run two pods on one database", d.Strategy.Type)
	}
	if !subset(d.Selector.MatchLabels, d.Template.Metadata.Labels) {
		t.Errorf("selector %v does not match pod labels %v", d.Selector.MatchLabels, d.Template.Metadata.Labels)
	}
	pod := d.Template.Spec
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 || pod.SecurityContext.FSGroup == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-root runAsUser and fsGroup", pod.SecurityContext)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	// A pinned image: a tag that names a release, or a digest. ":latest"
	// (or no tag) with IfNotPresent runs whatever each node pulled first.
	if err := pinnedImage(c.Image, c.ImagePullPolicy); err != nil {
		t.Errorf("image %q, pull policy %q: %v", c.Image, c.ImagePullPolicy, err)
	}
	// The README and the ConfigMap reload with POST /-/reload, which
	// answers 403 without --web.enable-lifecycle.
	for _, arg := range []string{"--storage.path=/data", "--config.file=/etc/smsbridge/smsbridge.yml", "--web.enable-lifecycle"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9754 || c.Ports[0].Name != "http" {
		t.Errorf("ports %+v, want http 9754", c.Ports)
	}
	if c.LivenessProbe.HTTPGet.Path != "/-/healthy" || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Errorf("probes %q/%q, want /-/healthy and /-/ready", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if c.LivenessProbe.HTTPGet.Port != "http" || c.ReadinessProbe.HTTPGet.Port != "http" {
		t.Error("probes should use the named port http")
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("container securityContext %+v: want a read-only root filesystem and no privilege escalation", c.SecurityContext)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	volumes := map[string]volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]volume{}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath: ConfigMap and Secret updates would not reach the pod", m.MountPath)
		}
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("mount %s names an undefined volume %q", m.MountPath, m.Name)
		}
		mounts[m.MountPath] = v
	}
	if v := mounts["/data"]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != k.pvc.Metadata.Name {
		t.Errorf("/data must be the PersistentVolumeClaim %q, got %+v", k.pvc.Metadata.Name, v)
	}
	if v := mounts["/tmp"]; v.EmptyDir == nil {
		t.Error("/tmp must be an emptyDir: the root filesystem is read-only")
	}

	// The projected /etc/smsbridge volume: the ConfigMap's smsbridge.yml
	// and every key of the Secret, under secrets/.
	etc := mounts["/etc/smsbridge"]
	if etc.Projected == nil {
		t.Fatal("/etc/smsbridge must be the projected volume of the ConfigMap and the Secret")
	}
	var cm, sec *projectedRef
	for _, s := range etc.Projected.Sources {
		if s.ConfigMap != nil {
			cm = s.ConfigMap
		}
		if s.Secret != nil {
			sec = s.Secret
		}
	}
	if cm == nil || cm.Name != k.configMap.Metadata.Name || !slices.Contains(cm.Items, item{"smsbridge.yml", "smsbridge.yml"}) {
		t.Errorf("projected ConfigMap %+v: want %q with smsbridge.yml", cm, k.configMap.Metadata.Name)
	}
	if sec == nil || sec.Name != k.secret.Metadata.Name {
		t.Fatalf("projected Secret %+v: want %q", sec, k.secret.Metadata.Name)
	}
	var projectedKeys []string
	for _, it := range sec.Items {
		if it.Path != "secrets/"+it.Key {
			t.Errorf("secret key %s projected to %s, want secrets/%s", it.Key, it.Path, it.Key)
		}
		projectedKeys = append(projectedKeys, it.Key)
	}
	slices.Sort(projectedKeys)
	secretKeys := slices.Sorted(maps.Keys(k.secret.StringData))
	if !slices.Equal(projectedKeys, secretKeys) {
		t.Errorf("projected secret keys %v, Secret keys %v: each key needs an item", projectedKeys, secretKeys)
	}

	// The bridge's config names exactly the files the Secret provides.
	conf, ok := k.configMap.Data["smsbridge.yml"]
	if !ok {
		t.Fatal("the ConfigMap has no smsbridge.yml")
	}
	f, needed := compileConfig(t, []byte(conf))
	if !slices.Equal(needed, secretKeys) {
		t.Errorf("smsbridge.yml reads secrets %v, the Secret holds %v", needed, secretKeys)
	}
	if !regexp.MustCompile(`(?m)^\s*api_key_file: ` + secretDir + `api-key$`).MatchString(conf) {
		t.Errorf("smsbridge.yml: want sms.api_key_file: %sapi-key", secretDir)
	}
	if a := f.Config.Alertmanager.Auth; a == nil || a.Type != "bearer" {
		t.Errorf("alertmanager.auth %+v, want bearer (alertmanager.yml sends a bearer token)", a)
	}
	for k, v := range k.secret.StringData {
		if !strings.HasPrefix(v, "REPLACE") {
			t.Errorf("Secret key %s holds %q: only placeholders belong in the example", k, v)
		}
	}
}

// pinnedImage reports why image is not pinned to one build.
func pinnedImage(image, policy string) error {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			return fmt.Errorf("digest %q is not sha256:<64 hex digits>", digest)
		}
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok || tag == "":
		return errors.New("no tag: that means :latest")
	case tag == "latest":
		return errors.New(":latest is not a release")
	case !regexp.MustCompile(`^v?\d+\.\d+\.\d+`).MatchString(tag):
		return fmt.Errorf("tag %q does not name a release (v1.2.3)", tag)
	case policy != "IfNotPresent" && policy != "":
		return fmt.Errorf("a pinned tag needs no %s", policy)
	}
	return nil
}

func TestPinnedImageCatchesMistakes(t *testing.T) {
	for _, tc := range []struct {
		image, policy string
		ok            bool
	}{
		{"ghcr.io/smsbridge/smsbridge:v0.1.0", "IfNotPresent", true},
		{"ghcr.io/smsbridge/smsbridge@sha256:" + strings.Repeat("ab", 32), "IfNotPresent", true},
		{"registry:5000/smsbridge:1.2.3", "", true},
		{"ghcr.io/smsbridge/smsbridge:latest", "IfNotPresent", false},
		{"ghcr.io/smsbridge/smsbridge", "IfNotPresent", false},
		{"registry:5000/smsbridge", "IfNotPresent", false},
		{"ghcr.io/smsbridge/smsbridge:main", "IfNotPresent", false},
		{"ghcr.io/smsbridge/smsbridge@sha256:abc", "IfNotPresent", false},
	} {
		if err := pinnedImage(tc.image, tc.policy); (err == nil) != tc.ok {
			t.Errorf("pinnedImage(%q) = %v, want ok=%v", tc.image, err, tc.ok)
		}
	}
}

// TestKubernetesSecretCannotDeployAsIs: the Secret's placeholders, applied
// as they are, make the bridge refuse to start, naming each file.
func TestKubernetesSecretCannotDeployAsIs(t *testing.T) {
	k := loadKubernetes(t)
	dir := t.TempDir()
	for key, v := range k.secret.StringData {
		if err := os.WriteFile(filepath.Join(dir, key), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := strings.ReplaceAll(k.configMap.Data["smsbridge.yml"], secretDir, dir+"/")
	f, err := config.Load([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	_, err = generation.Build(f, generation.Options{})
	if err == nil {
		t.Fatal("the bridge accepted the example Secret's placeholders")
	}
	for key := range k.secret.StringData {
		if want := filepath.Join(dir, key) + ` holds a placeholder`; !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// dockerignored reports whether path is left out of the build context by
// the .dockerignore patterns: a pattern excludes a path it matches and
// everything under it ("**/" matches any leading directories).
func dockerignored(patterns []string, path string) bool {
	excluded := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = filepath.Clean(strings.TrimPrefix(p, "!"))
		match := false
		parts := strings.Split(path, "/")
		for i := 1; i <= len(parts) && !match; i++ {
			prefix := strings.Join(parts[:i], "/")
			if ok, _ := filepath.Match(p, prefix); ok {
				match = true
			}
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				for j := 0; j < i && !match; j++ {
					if ok, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); ok {
						match = true
					}
				}
			}
		}
		if match {
			excluded = !neg
		}
	}
	return excluded
}

// TestDockerImage: the build context leaves out the outbox, databases,
// build output and history; /data belongs to the nonroot user, before the
// VOLUME instruction (later changes to a volume path are discarded), so a
// named volume is writable without root.
func TestDockerImage(t *testing.T) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for path, want := range map[string]bool{
		"data/smsbridge.db": true, "data/smsbridge.db-wal": true, ".git/HEAD": true, "build/status-page.png": true,
		"old.db": true, "somewhere/data/smsbridge.db": true,
		"go.mod": false, "go.sum": false, "main.go": false, "status/static/status.css": false,
		"config.example.yaml": false, "outbox/sqlite/testdata/v1.db": true, "receiver/testdata/am-firing.json": false,
	} {
		if got := dockerignored(patterns, path); got != want {
			t.Errorf(".dockerignore: %s excluded=%v, want %v", path, got, want)
		}
	}

	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var final []string
	stages := 0
	for _, l := range strings.Split(string(df), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "FROM ") {
			stages++
			final = nil
		}
		if l != "" && !strings.HasPrefix(l, "#") {
			final = append(final, l)
		}
	}
	if stages < 2 {
		t.Fatalf("%d stages: want a build stage and a runtime stage", stages)
	}
	if !regexp.MustCompile(`(?m)^RUN .*mkdir -p /out/data && chown 65532:65532 /out/data`).Match(df) {
		t.Error("the build stage does not make /data for the nonroot user (65532)")
	}
	copyData, volume, user := -1, -1, -1
	for i, l := range final {
		switch {
		case regexp.MustCompile(`^COPY --from=build --chown=(65532:65532|nonroot:nonroot) \S+ /data$`).MatchString(l):
			copyData = i
		case l == `VOLUME ["/data"]`:
			volume = i
		case l == "USER nonroot:nonroot" || l == "USER 65532:65532":
			user = i
		}
	}
	if copyData < 0 || volume < 0 || user < 0 {
		t.Fatalf("final stage %q: want COPY --chown of /data, VOLUME [\"/data\"] and USER nonroot", final)
	}
	if copyData > volume {
		t.Error("/data is copied after VOLUME: Docker discards that change")
	}
}

func TestKubernetesServiceAndMonitor(t *testing.T) {
	k := loadKubernetes(t)
	// The Service's name becomes the job label under a ServiceMonitor, and
	// mixin/alerts.yml selects job=~"smsbridge".
	if k.service.Metadata.Name != "smsbridge" {
		t.Errorf("Service name %q: the alert rules select job smsbridge", k.service.Metadata.Name)
	}
	if !subset(k.service.Spec.Selector, k.deployment.Spec.Template.Metadata.Labels) {
		t.Errorf("Service selector %v does not select the pod %v", k.service.Spec.Selector, k.deployment.Spec.Template.Metadata.Labels)
	}
	ports := k.service.Spec.Ports
	if len(ports) != 1 || ports[0].Port != 9754 || ports[0].Name != "http" || ports[0].TargetPort != "http" {
		t.Errorf("Service ports %+v, want http 9754 -> http", ports)
	}
	m := k.monitor
	if m.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %q", m.APIVersion)
	}
	if !subset(m.Spec.Selector.MatchLabels, k.service.Metadata.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the Service %v", m.Spec.Selector.MatchLabels, k.service.Metadata.Labels)
	}
	if len(m.Spec.Endpoints) != 1 || m.Spec.Endpoints[0].Port != "http" || m.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port http path /metrics", m.Spec.Endpoints)
	}
	if !slices.Equal(k.pvc.Spec.AccessModes, []string{"ReadWriteOnce"}) {
		t.Errorf("PVC access modes %v, want ReadWriteOnce", k.pvc.Spec.AccessModes)
	}
}

func TestAlertmanagerExample(t *testing.T) {
	type route struct {
		Receiver string   `yaml:"receiver"`
		Matchers []string `yaml:"matchers"`
		Continue bool     `yaml:"continue"`
		Routes   []route  `yaml:"routes"`
	}
	var am struct {
		Route     route `yaml:"route"`
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL          string `yaml:"url"`
				SendResolved bool   `yaml:"send_resolved"`
				MaxAlerts    int    `yaml:"max_alerts"`
				HTTPConfig   struct {
					Authorization struct {
						Type            string `yaml:"type"`
						CredentialsFile string `yaml:"credentials_file"`
					} `yaml:"authorization"`
				} `yaml:"http_config"`
			} `yaml:"webhook_configs"`
			EmailConfigs []any `yaml:"email_configs"`
		} `yaml:"receivers"`
	}
	readYAML(t, "alertmanager/alertmanager.yml", &am)
	k := loadKubernetes(t)

	viaBridge := map[string]bool{}
	for _, r := range am.Receivers {
		for _, wc := range r.WebhookConfigs {
			u, err := url.Parse(wc.URL)
			if err != nil {
				t.Fatal(err)
			}
			if u.Path != "/api/v1/alertmanager" {
				continue
			}
			viaBridge[r.Name] = true
			if want := k.service.Metadata.Name + ":9754"; u.Host != want {
				t.Errorf("%s: webhook host %q, want the Service %s", r.Name, u.Host, want)
			}
			if !wc.SendResolved || wc.MaxAlerts != 10 {
				t.Errorf("%s: send_resolved %v max_alerts %d, want true and 10", r.Name, wc.SendResolved, wc.MaxAlerts)
			}
			auth := wc.HTTPConfig.Authorization
			if !strings.EqualFold(auth.Type, "bearer") || !strings.HasSuffix(auth.CredentialsFile, "/alertmanager-token") {
				t.Errorf("%s: authorization %+v, want a bearer credentials_file .../alertmanager-token", r.Name, auth)
			}
			if _, ok := k.secret.StringData["alertmanager-token"]; !ok {
				t.Error("the Secret has no alertmanager-token")
			}
		}
	}
	if len(viaBridge) == 0 {
		t.Fatal("no receiver sends to /api/v1/alertmanager")
	}
	// The bridge's own alerts must reach a receiver that does not go
	// through the bridge.
	var otherChannel bool
	var walk func(route)
	walk = func(r route) {
		if slices.Contains(r.Matchers, `alertname=~"Smsbridge.*"`) && !viaBridge[r.Receiver] {
			otherChannel = true
		}
		for _, c := range r.Routes {
			walk(c)
		}
	}
	walk(am.Route)
	if !otherChannel {
		t.Error(`no route sends alertname=~"Smsbridge.*" to a receiver outside the bridge`)
	}
}

// checkPresetConfig compiles an example smsbridge.yml, checks that its
// preset entry has the auth the README describes, and returns the names of
// its plain sources with bearer auth (the ones CI scripts post to).
func checkPresetConfig(t *testing.T, path, preset, authType, header, prefix string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := compileConfig(t, data)
	var plain []string
	found := false
	for _, w := range f.Config.Webhooks {
		if w.Auth == nil {
			t.Errorf("%s: webhook %s has no auth", path, w.Name)
			continue
		}
		switch w.Preset {
		case preset:
			found = true
			if w.Name != preset || w.Auth.Type != authType || w.Auth.Header != header || w.Auth.Prefix != prefix {
				t.Errorf("%s: %s entry %s auth %s %s %q; README says %s %s %s %q", path, preset, w.Name, w.Auth.Type, w.Auth.Header, w.Auth.Prefix, preset, authType, header, prefix)
			}
		case "plain":
			if w.Auth.Type == "bearer" {
				plain = append(plain, w.Name)
			}
		}
	}
	if !found {
		t.Errorf("%s: no %s webhook", path, preset)
	}
	return plain
}

// webhookTarget returns the source name a CI script posts to, and whether
// it sends the bearer token from the variable SMSBRIDGE_TOKEN.
func webhookTarget(script string) (string, bool) {
	m := regexp.MustCompile(`/api/v1/webhooks/([A-Za-z0-9_-]+)`).FindStringSubmatch(script)
	if m == nil {
		return "", false
	}
	return m[1], strings.Contains(script, `Authorization: Bearer ${SMSBRIDGE_TOKEN}`)
}

func TestGitHubExample(t *testing.T) {
	plain := checkPresetConfig(t, "github/smsbridge.yml", "github", "hmac-sha256", "X-Hub-Signature-256", "sha256=")
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				If  string            `yaml:"if"`
				Env map[string]string `yaml:"env"`
				Run string            `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	readYAML(t, "github/workflow.yml", &wf)
	var posts int
	for _, job := range wf.Jobs {
		for _, s := range job.Steps {
			source, bearer := webhookTarget(s.Run)
			if source == "" {
				continue
			}
			posts++
			if s.If != "failure()" {
				t.Errorf("the step posting to %s runs if %q, want failure()", source, s.If)
			}
			if !slices.Contains(plain, source) || !bearer {
				t.Errorf("the step posts to %s (bearer %v); plain bearer sources in github/smsbridge.yml: %v", source, bearer, plain)
			}
			if s.Env["SMSBRIDGE_TOKEN"] != "${{ secrets.SMSBRIDGE_TOKEN }}" {
				t.Errorf("SMSBRIDGE_TOKEN is %q, want the repository secret", s.Env["SMSBRIDGE_TOKEN"])
			}
		}
	}
	if posts != 1 {
		t.Errorf("%d steps post to smsbridge, want 1", posts)
	}
}

func TestGitLabExample(t *testing.T) {
	plain := checkPresetConfig(t, "gitlab/smsbridge.yml", "gitlab", "token", "X-Gitlab-Token", "")
	var ci map[string]any
	readYAML(t, "gitlab/gitlab-ci.yml", &ci)
	var posts int
	for name, v := range ci {
		job, ok := v.(map[string]any)
		if !ok {
			continue
		}
		script, _ := yaml.Marshal(job["script"])
		var lines []string
		if err := yaml.Unmarshal(script, &lines); err != nil {
			continue
		}
		source, bearer := webhookTarget(strings.Join(lines, "\n"))
		if source == "" {
			continue
		}
		posts++
		if job["when"] != "on_failure" {
			t.Errorf("job %s posts to smsbridge with when %v, want on_failure", name, job["when"])
		}
		if _, hasRules := job["rules"]; hasRules {
			t.Errorf("job %s: GitLab refuses when beside rules", name)
		}
		if !slices.Contains(plain, source) || !bearer {
			t.Errorf("job %s posts to %s (bearer %v); plain bearer sources in gitlab/smsbridge.yml: %v", name, source, bearer, plain)
		}
	}
	if posts != 1 {
		t.Errorf("%d jobs post to smsbridge, want 1", posts)
	}
}

// TestExampleConfig builds the repository's config.example.yaml as a dry
// run would, and again with its commented-out fallback account enabled, so
// that every key it documents is one the bridge accepts.
func TestExampleConfig(t *testing.T) {
	const path = "../config.example.yaml"
	f, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := generation.Build(f, generation.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Accounts) != 1 || f.Config.Delivery.Workers != 0 {
		t.Errorf("accounts %v workers %d", g.Accounts, f.Config.Delivery.Workers)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?m)^  # fallback:\n(  #   .*\n)+`)
	commented := block.Find(data)
	if commented == nil {
		t.Fatal("config.example.yaml has no commented-out sms.fallback block")
	}
	enabled := regexp.MustCompile(`(?m)^  # ?`).ReplaceAll(commented, []byte("  "))
	tmp := filepath.Join(t.TempDir(), "smsbridge.yml")
	withFallback := bytes.Replace(data, commented, enabled, 1)
	// Paths in the example are relative to the repository.
	withFallback = bytes.ReplaceAll(withFallback, []byte("examples/dev-secrets/"), []byte(mustAbs(t, "dev-secrets")+"/"))
	if err := os.WriteFile(tmp, withFallback, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = config.LoadFile(tmp)
	if err != nil {
		t.Fatalf("with the fallback enabled: %v", err)
	}
	g, err = generation.Build(f, generation.Options{DryRun: true})
	if err != nil {
		t.Fatalf("with the fallback enabled: %v", err)
	}
	if len(g.Accounts) != 2 || g.Accounts[1].Name != generation.AccountFallback || g.Accounts[1].RateLimit != 5 {
		t.Errorf("accounts with the fallback enabled: %+v", g.Accounts)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestKubernetesHA: the replicas example runs two pods with no volume on
// one PostgreSQL database whose DSN is a file from the Secret.
func TestKubernetesHA(t *testing.T) {
	var (
		d   deployment
		cm  dataObject
		sec dataObject
		kz  struct {
			Resources []string `yaml:"resources"`
		}
	)
	readYAML(t, "kubernetes/ha/deployment.yaml", &d)
	readYAML(t, "kubernetes/ha/configmap.yaml", &cm)
	readYAML(t, "kubernetes/ha/secret.yaml", &sec)
	readYAML(t, "kubernetes/ha/kustomization.yaml", &kz)
	files, err := filepath.Glob("kubernetes/ha/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			listed = append(listed, base)
		}
	}
	slices.Sort(listed)
	if got := slices.Sorted(slices.Values(kz.Resources)); !slices.Equal(got, listed) {
		t.Errorf("kustomization lists %v, the directory holds %v", got, listed)
	}
	s := d.Spec
	if s.Replicas < 2 || s.Strategy.Type != "RollingUpdate" {
		t.Errorf("replicas %d, strategy %q: want at least 2, rolling", s.Replicas, s.Strategy.Type)
	}
	pod := s.Template.Spec
	var dsnItem bool
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s is a PersistentVolumeClaim: replicas keep their state in the database", v.Name)
		}
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.Secret != nil && slices.Contains(src.Secret.Items, item{"pg-dsn", "secrets/pg-dsn"}) {
				dsnItem = true
			}
		}
	}
	if !dsnItem {
		t.Error("the Secret's pg-dsn is not projected to secrets/pg-dsn")
	}
	for _, arg := range pod.Containers[0].Args {
		if strings.HasPrefix(arg, "--storage.path") {
			t.Errorf("arg %s: the postgres driver keeps nothing on disk", arg)
		}
	}
	f, needed := compileConfig(t, []byte(cm.Data["smsbridge.yml"]))
	if st := f.Config.Storage; st.Driver != config.StoragePostgres || !strings.HasSuffix(st.DSNFile, "/pg-dsn") || st.DSN != "" {
		t.Errorf("storage %+v: want the postgres driver with dsn_file .../pg-dsn", st)
	}
	if keys := slices.Sorted(maps.Keys(sec.StringData)); !slices.Equal(needed, keys) {
		t.Errorf("smsbridge.yml reads secrets %v, the Secret holds %v", needed, keys)
	}
}
