package config

import (
	"net/url"
	"strings"
)

// MaskURL returns s with the password of its userinfo ("user:password@")
// shown as "***", for printing a URL from the configuration. A URL without a
// password is returned unchanged. A value that does not parse as a URL is
// masked textually: whatever lies between a ':' and the last '@' of its
// authority.
func MaskURL(s string) string {
	if u, err := url.Parse(s); err == nil && (u.User != nil || u.Opaque == "") {
		if _, ok := u.User.Password(); !ok {
			return s
		}
		// Not url.UserPassword(name, masked): String would escape the stars.
		user := url.User(u.User.Username()).String()
		u.User = nil
		return strings.Replace(u.String(), "//", "//"+user+":"+masked+"@", 1)
	}
	// Not a URL with an authority (host:port with a userinfo, or an
	// unparsable value): mask the text.
	rest, authority := s, s
	prefix := ""
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	authority = rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(authority[:at], ":")
	if colon < 0 {
		return s
	}
	return prefix + authority[:colon+1] + masked + rest[at:]
}
