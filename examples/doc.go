// Package examples holds no code: the directory is example configuration
// (Alertmanager, Kubernetes, GitHub, GitLab) for operators to copy. Its
// tests prove every file parses, that the smsbridge configurations (the
// repository's config.example.yaml too) load and build with the bridge's
// own config and generation packages, and that the files agree with each
// other (secret keys and mounts, ports, source names, auth types).
package examples
