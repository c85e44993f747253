package cekat

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrRedirectRefused is wrapped by the error of a call whose answer was a
// redirect the client does not follow.
var ErrRedirectRefused = errors.New("redirect refused")

// maxRedirects is how many same-origin redirects one GET follows, as Go's
// default client does.
const maxRedirects = 10

// CheckRedirect is the redirect policy of every client that carries a
// credential. Go's client copies custom headers (api_key, access_token) to
// whatever host a redirect names, and strips only Authorization, so a
// redirect to another origin (scheme, host and port) is refused: a key
// never leaves the host it was configured for, nor travels unencrypted
// after an https answer. A GET redirected within its origin is followed
// with its headers: the key goes where it went already, and a server that
// moved a path keeps working. Any other method is never redirected: 301,
// 302 and 303 would turn a delete into a GET without its body, and 307 and
// 308 would send it a second time.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	first := via[0]
	switch {
	case origin(req.URL) != origin(first.URL):
		return fmt.Errorf("%w: %s answered with a redirect to another host (%s); credentials are only sent to the configured host: check the API URL",
			ErrRedirectRefused, origin(first.URL), origin(req.URL))
	case first.Method != http.MethodGet:
		return fmt.Errorf("%w: a %s is never redirected (it must not be sent twice, nor as a GET)", ErrRedirectRefused, first.Method)
	case len(via) >= maxRedirects:
		return fmt.Errorf("%w: stopped after %d redirects", ErrRedirectRefused, len(via))
	}
	return nil
}

// origin is scheme://host:port with the scheme's default port made explicit.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// withRedirectPolicy returns c, or a copy of it, that checks redirects with
// CheckRedirect before any policy of its own.
func withRedirectPolicy(c *http.Client) *http.Client {
	own := c.CheckRedirect
	cc := *c
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := CheckRedirect(req, via); err != nil {
			return err
		}
		if own != nil {
			return own(req, via)
		}
		return nil
	}
	return &cc
}
