// Package reliability is smsbridge's reliability suite. Its tests build
// the daemon, run the binary as an operator would, on 127.0.0.1 against
// the sms/fake fake of the provider, and break things on purpose: kill
// -9 under load, a provider that fails in every documented way, an
// account that is refused, a store that cannot be written, and a catalogue
// of malformed and hostile requests. Each test says what must still hold.
//
// The tests take minutes and some need root (the unwritable-store test sets
// the immutable attribute with chattr), so they sit behind the build tag
// "reliability" and stay out of the default go test ./...:
//
//	go test -tags reliability -count=1 -v ./reliability/
//
// docs/reliability.md records what the suite found and how to read it.
package reliability
