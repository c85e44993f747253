package cekatsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is an injectable wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a simulator behind real HTTP servers.
type env struct {
	t    *testing.T
	sim  *Server
	api  *httptest.Server
	back *httptest.Server
	hdr  map[string]string // credentials sent by default
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &env{t: t, sim: s, api: httptest.NewServer(s.Handler()), back: httptest.NewServer(s.BackofficeHandler())}
	t.Cleanup(e.api.Close)
	t.Cleanup(e.back.Close)
	e.hdr = map[string]string{"Authorization": "Bearer " + s.opts.APIKey, "api_key": s.opts.APIKey}
	return e
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %.300s", a.status, err, a.body)
	}
	return m
}

func request(base, method, path string, hdr map[string]string, body string) answer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return answer{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (e *env) get(path string) answer {
	return request(e.api.URL, http.MethodGet, path, e.hdr, "")
}

func (e *env) mustGet(path string, want int) map[string]any {
	e.t.Helper()
	a := e.get(path)
	if a.err != nil {
		e.t.Fatalf("GET %s: %v", path, a.err)
	}
	if a.status != want {
		e.t.Fatalf("GET %s: status %d, want %d: %.300s", path, a.status, want, a.body)
	}
	return a.json(e.t)
}

func (e *env) post(path, body string) answer {
	return request(e.api.URL, http.MethodPost, path, e.hdr, body)
}

func (e *env) deleteConvs(hdr map[string]string, ids ...string) answer {
	b, _ := json.Marshal(map[string]any{"conversation_ids": ids})
	return request(e.back.URL, http.MethodPost, "/v1/backoffice/conversations-delete", hdr, string(b))
}

func (e *env) backofficeHeader() map[string]string {
	o := e.sim.opts
	if o.BackofficeAuth == BackofficeAccessToken {
		return map[string]string{"access_token": o.BackofficeToken}
	}
	return map[string]string{"Authorization": "Bearer " + o.BackofficeToken}
}

func listPath(conv string, params ...string) string {
	p := "/messages?conversation_id=" + url.QueryEscape(conv)
	for i := 0; i+1 < len(params); i += 2 {
		p += "&" + params[i] + "=" + url.QueryEscape(params[i+1])
	}
	return p
}

// page is a decoded list answer.
type page struct {
	items      []json.RawMessage
	hasPag     bool
	hasMore    bool
	before     string
	beforeNull bool
}

func decodePage(t *testing.T, body []byte) page {
	t.Helper()
	var raw struct {
		Success    bool              `json:"success"`
		Data       []json.RawMessage `json:"data"`
		Pagination *struct {
			HasMore bool    `json:"has_more"`
			Before  *string `json:"before"`
		} `json:"pagination"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("list answer: %v: %.300s", err, body)
	}
	if !raw.Success || raw.Data == nil {
		t.Fatalf("list answer without success/data: %.300s", body)
	}
	p := page{items: raw.Data}
	if raw.Pagination != nil {
		p.hasPag, p.hasMore = true, raw.Pagination.HasMore
		if raw.Pagination.Before == nil {
			p.beforeNull = true
		} else {
			p.before = *raw.Pagination.Before
		}
	}
	return p
}

func itemID(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	id, _ := m["id"].(string)
	return id
}

// parseServedTime parses every format the field notes list, independently of
// the simulator's own formatting code.
func parseServedTime(s string) (time.Time, bool) {
	wib := time.FixedZone("Asia/Jakarta", 7*3600)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", s, wib); err == nil {
		return t, true
	}
	if t, err := time.Parse("2006-01-02 15:04:05.999999999-07", s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}
