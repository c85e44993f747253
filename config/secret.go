package config

import (
	"encoding/json"
	"fmt"
	"io"
)

// masked is what a set Secret looks like wherever it is printed.
const masked = "***"

// Secret is a credential. Printing or marshalling a Secret never shows its
// value: a set Secret appears as "***" and an unset one as "". Call Reveal
// where the value itself is needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "***" for a set secret and "" for an unset one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString keeps the value out of fmt's %#v.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format keeps the value out of every fmt verb: %#v prints GoString, the
// others format String. (String alone does not cover verbs such as %d,
// which fmt answers by printing the raw value.)
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalYAML writes "***" for a set secret and "" for an unset one.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON writes "***" for a set secret and "" for an unset one.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
