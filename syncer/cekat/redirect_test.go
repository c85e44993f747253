package cekat

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// TestRedirectToAnotherHostIsRefused: no credential reaches a host other
// than the configured one, whichever call is redirected, and the refusal is
// not retried.
func TestRedirectToAnotherHostIsRefused(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, h := range []string{"Authorization", "api_key", "access_token"} {
			if r.Header.Get(h) != "" {
				leaked = append(leaked, r.Method+" "+r.URL.Path+" "+h)
			}
		}
		mu.Unlock()
		io.WriteString(w, okPage)
	}))
	t.Cleanup(other.Close)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		calls := &scripted{answers: []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, code)
		}}}
		c, _ := newTestClient(t, calls, nil)
		ctx := context.Background()
		_, errList := c.ListMessages(ctx, "c1", 0, "")
		_, errDetail := c.GetMessage(ctx, "m1")
		_, errConvs := c.ListConversations(ctx, ConversationFilter{}, nil)
		_, errDelete := c.DeleteConversations(ctx, []string{"c1"})
		for name, err := range map[string]error{"list": errList, "detail": errDetail, "conversations": errConvs, "delete": errDelete} {
			if !errors.Is(err, ErrRedirectRefused) || !strings.Contains(err.Error(), "another host") {
				t.Errorf("%d, %s: error %v, want a refused redirect to another host", code, name, err)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("%d, %s: the error names the key", code, name)
			}
		}
		if n := calls.count(); n != 4 {
			t.Errorf("%d: %d requests to the configured host, want 4 (a refused redirect is not retried)", code, n)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("credentials sent to another host: %v", leaked)
	}
}

// TestRedirectWithinTheHost: a GET follows a redirect on its own host with
// its credential; a POST is never redirected, so it is sent once.
func TestRedirectWithinTheHost(t *testing.T) {
	var mu sync.Mutex
	var posts int
	var moved http.Header
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/moved":
			mu.Lock()
			moved = r.Header.Clone()
			mu.Unlock()
			io.WriteString(w, okPage)
		case r.Method == http.MethodPost:
			mu.Lock()
			posts++
			mu.Unlock()
			http.Redirect(w, r, "/bo/v1/backoffice/conversations-delete", http.StatusTemporaryRedirect)
		default:
			http.Redirect(w, r, "/moved", http.StatusFound)
		}
	}), nil)
	if _, err := c.ListMessages(context.Background(), "c1", 0, ""); err != nil {
		t.Fatalf("same-host redirect of a GET: %v", err)
	}
	if moved.Get("api_key") != testKey {
		t.Errorf("the redirected GET lost its key: %v", moved)
	}
	_, err := c.DeleteConversations(context.Background(), []string{"c1"})
	if !errors.Is(err, ErrRedirectRefused) {
		t.Errorf("redirected delete: %v, want refused", err)
	}
	if posts != 1 {
		t.Errorf("delete sent %d times, want once", posts)
	}
}

func TestOriginMakesDefaultPortsExplicit(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"https://api.cekat.ai/x", "https://API.cekat.ai:443/y"},
		{"http://h/x", "http://h:80/"},
	} {
		a, b := mustParse(t, tt.a), mustParse(t, tt.b)
		if origin(a) != origin(b) {
			t.Errorf("%s and %s: %s != %s", tt.a, tt.b, origin(a), origin(b))
		}
	}
	for _, tt := range []struct{ a, b string }{
		{"https://h/x", "http://h/x"},
		{"https://h/x", "https://h:8443/x"},
		{"https://h/x", "https://h.evil/x"},
	} {
		if origin(mustParse(t, tt.a)) == origin(mustParse(t, tt.b)) {
			t.Errorf("%s and %s: same origin", tt.a, tt.b)
		}
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
