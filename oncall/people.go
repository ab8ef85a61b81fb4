package oncall

import (
	"fmt"
	"slices"
	"strings"
)

// Member is one person or bare number on call. Name is empty for a number
// that belongs to no configured person.
type Member struct {
	Name   string
	Number string
}

// Format writes m as logs and pages show it, "alice (+2783****001)" or
// "+2783****001", with show applied to the number (a masker, or the
// identity where numbers are shown in full).
func (m Member) Format(show func(string) string) string {
	if m.Name == "" {
		return show(m.Number)
	}
	return m.Name + " (" + show(m.Number) + ")"
}

// FormatMembers joins the members with ", ", each as Format writes it.
func FormatMembers(ms []Member, show func(string) string) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Format(show)
	}
	return strings.Join(parts, ", ")
}

// Directory resolves what configurations write for a member, a person's
// name or a phone number, into Members. It is immutable once built.
type Directory struct {
	byName    map[string]Member
	byNumber  map[string]Member
	names     []string
	normalize func(string) (string, error)
}

// LookupError says why a member could not be resolved: a name no person
// has, or a number that is not one.
type LookupError struct {
	Ref string
	// UnknownPerson is true for a name; false for a bad number, whose
	// reason is Err.
	UnknownPerson bool
	Err           error
	people        []string
}

// Msg is the error without its cause.
func (e *LookupError) Msg() string {
	switch {
	case !e.UnknownPerson:
		return fmt.Sprintf("bad number %q", e.Ref)
	case len(e.people) == 0:
		return fmt.Sprintf("unknown person %q: no people are configured (people: [{name, number}])", e.Ref)
	default:
		return fmt.Sprintf("unknown person %q; people are %s", e.Ref, strings.Join(e.people, ", "))
	}
}

func (e *LookupError) Error() string {
	if e.Err != nil {
		return e.Msg() + ": " + e.Err.Error()
	}
	return e.Msg()
}

func (e *LookupError) Unwrap() error { return e.Err }

// NewDirectory validates people and returns their directory. normalize
// turns a configured number into its canonical form or says why it is not
// a number; nil keeps numbers as written. Problems are reported with their
// paths ("people[1].number").
func NewDirectory(people []Person, normalize func(string) (string, error)) (*Directory, []*Error) {
	if normalize == nil {
		normalize = func(s string) (string, error) { return s, nil }
	}
	d := &Directory{byName: map[string]Member{}, byNumber: map[string]Member{}, normalize: normalize}
	var errs []*Error
	for i, p := range people {
		at := fmt.Sprintf("people[%d]", i)
		name := strings.TrimSpace(p.Name)
		_, dup := d.byName[name]
		switch {
		case name == "":
			errs = append(errs, errorf(at+".name", nil, "%s: empty name", at))
			continue
		case isNumberRef(name):
			errs = append(errs, errorf(at+".name", nil, "person %q: a name must not start with '+', '(' or a digit, which mark a phone number", name))
			continue
		case dup:
			errs = append(errs, errorf(at+".name", nil, "person %q is listed twice", name))
			continue
		}
		if strings.TrimSpace(p.Number) == "" {
			errs = append(errs, errorf(at+".number", nil, "person %q: no number", name))
			continue
		}
		num, err := normalize(p.Number)
		if err != nil {
			errs = append(errs, errorf(at+".number", err, "person %q: bad number %q", name, p.Number))
			continue
		}
		if other, dup := d.byNumber[num]; dup {
			errs = append(errs, errorf(at+".number", nil, "person %q has the same number as %q; one number, one name", name, other.Name))
			continue
		}
		m := Member{Name: name, Number: num}
		d.byName[name], d.byNumber[num] = m, m
		d.names = append(d.names, name)
	}
	return d, errs
}

// isNumberRef tells a number from a name: numbers start with '+', '(' or
// a digit.
func isNumberRef(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && (s[0] == '+' || s[0] == '(' || (s[0] >= '0' && s[0] <= '9'))
}

// Lookup resolves ref, a person's name or a phone number; the error is a
// *LookupError. A number that belongs to a person resolves to that person,
// so logs name them either way. What does not start like a number ('+',
// '(' or a digit) is a name.
func (d *Directory) Lookup(ref string) (Member, error) {
	if name := strings.TrimSpace(ref); !isNumberRef(name) {
		if m, ok := d.byName[name]; ok {
			return m, nil
		}
		return Member{}, &LookupError{Ref: ref, UnknownPerson: true, people: d.names}
	}
	num, err := d.normalize(ref)
	if err != nil {
		return Member{}, &LookupError{Ref: ref, Err: err}
	}
	if m, ok := d.byNumber[num]; ok {
		return m, nil
	}
	return Member{Number: num}, nil
}

// LookupAll resolves every ref, dropping repeats of a number.
func (d *Directory) LookupAll(refs []string) ([]Member, error) {
	out := make([]Member, 0, len(refs))
	for _, r := range refs {
		m, err := d.Lookup(r)
		if err != nil {
			return nil, err
		}
		out = addMember(out, m)
	}
	return out, nil
}

// People returns the configured people's names, in configuration order.
func (d *Directory) People() []string { return slices.Clone(d.names) }

// addMember appends m unless its number is there already.
func addMember(ms []Member, m Member) []Member {
	for _, x := range ms {
		if x.Number == m.Number {
			return ms
		}
	}
	return append(ms, m)
}

// Error is one problem in the on-call configuration, at Path in the
// configuration's own syntax ("oncall[0].rotation.shift").
type Error struct {
	Path string
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(path string, cause error, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...), Err: cause}
}
