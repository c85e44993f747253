package cekatsim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Endpoint names used by Counts.
const (
	EndpointList   = "list"
	EndpointDetail = "detail"
	EndpointSend   = "send"
	EndpointDelete = "delete"
)

// Counts are the API requests seen since the last reset: by endpoint and HTTP
// status (0 = connection dropped without an answer), plus the number of 429s.
type Counts struct {
	ByEndpoint  map[string]map[int]int `json:"by_endpoint"`
	Total       int                    `json:"total"`
	RateLimited int                    `json:"rate_limited"`
}

// Endpoint is the number of requests to one endpoint, whatever their status.
func (c Counts) Endpoint(name string) int {
	n := 0
	for _, v := range c.ByEndpoint[name] {
		n += v
	}
	return n
}

// Status is the number of requests to one endpoint answered with status.
func (c Counts) Status(endpoint string, status int) int { return c.ByEndpoint[endpoint][status] }

type counter struct {
	mu sync.Mutex
	c  Counts
}

func (k *counter) reset() {
	k.mu.Lock()
	k.c = Counts{ByEndpoint: map[string]map[int]int{}}
	k.mu.Unlock()
}

func (k *counter) add(endpoint string, status int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.c.ByEndpoint[endpoint]
	if m == nil {
		m = map[int]int{}
		k.c.ByEndpoint[endpoint] = m
	}
	m[status]++
	k.c.Total++
	if status == http.StatusTooManyRequests {
		k.c.RateLimited++
	}
}

func (k *counter) get() Counts {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := Counts{ByEndpoint: map[string]map[int]int{}, Total: k.c.Total, RateLimited: k.c.RateLimited}
	for e, m := range k.c.ByEndpoint {
		out.ByEndpoint[e] = maps.Clone(m)
	}
	return out
}

// Counts returns the request counts since the last reset.
func (s *Server) Counts() Counts { return s.counts.get() }

// ResetCounts zeroes the request counts.
func (s *Server) ResetCounts() { s.counts.reset() }

// limiter implements fixed one-minute windows (starting at the first request
// after the previous window ended, or at second 0 of each minute when
// aligned) and a per-UTC-day cap, on the wall clock.
type limiter struct {
	mu      sync.Mutex
	perMin  int
	perDay  int
	winEnd  time.Time
	used    int
	day     time.Time
	dayUsed int
}

type verdict struct {
	ok         bool
	headers    bool // whether X-RateLimit-* are sent
	limit      int
	remaining  int
	reset      time.Time
	retryAfter time.Duration
}

func (l *limiter) take(now time.Time, aligned bool) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := verdict{ok: true, headers: l.perMin > 0, limit: l.perMin}
	if l.perMin > 0 && !now.Before(l.winEnd) {
		if aligned {
			l.winEnd = now.Truncate(time.Minute).Add(time.Minute)
		} else {
			l.winEnd = now.Truncate(time.Second).Add(time.Minute)
		}
		l.used = 0
	}
	if day := now.UTC().Truncate(24 * time.Hour); !day.Equal(l.day) {
		l.day, l.dayUsed = day, 0
	}
	switch {
	case l.perDay > 0 && l.dayUsed >= l.perDay:
		v.ok = false
		v.reset = l.day.Add(24 * time.Hour)
	case l.perMin > 0 && l.used >= l.perMin:
		v.ok = false
		v.reset = l.winEnd
	default:
		l.used++
		l.dayUsed++
		v.remaining = max(l.perMin-l.used, 0)
		v.reset = l.winEnd
		return v
	}
	v.retryAfter = v.reset.Sub(now)
	return v
}

func (v verdict) write(h http.Header, which RateHeaders) {
	if !v.headers || which == RateHeadersNone {
		return
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(v.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(v.remaining))
	if which != RateHeadersLimitRemaining {
		h.Set("X-RateLimit-Reset", strconv.FormatInt(v.reset.Unix(), 10))
	}
}

// credentials

func bearerToken(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	if len(a) < 7 || !strings.EqualFold(a[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(a[7:]), true
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Server) apiAuthorized(r *http.Request) bool {
	bt, hasBearer := bearerToken(r)
	bearerOK := hasBearer && equal(bt, s.opts.APIKey)
	key := r.Header.Get("api_key")
	keyOK := key != "" && equal(key, s.opts.APIKey)
	switch s.opts.Auth {
	case AuthBearer:
		return bearerOK
	case AuthAPIKey:
		return keyOK
	case AuthBoth:
		return bearerOK && keyOK
	}
	return bearerOK || keyOK
}

func (s *Server) backofficeAuthorized(r *http.Request) bool {
	if s.opts.BackofficeAuth == BackofficeAccessToken {
		t := r.Header.Get("access_token")
		return t != "" && equal(t, s.opts.BackofficeToken)
	}
	t, ok := bearerToken(r)
	return ok && equal(t, s.opts.BackofficeToken)
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// bufferWriter holds a whole answer so that it can be cut.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }
func (w *bufferWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *bufferWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(b)
}

// api wraps an API endpoint: latency, authentication, rate limit, faults,
// counting.
func (s *Server) api(endpoint string, authorized func(*http.Request) bool, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Latency > 0 {
			t := time.NewTimer(s.opts.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				s.counts.add(endpoint, 0)
				return
			}
		}
		if !authorized(r) {
			s.writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid or missing credentials", nil)
			s.counts.add(endpoint, http.StatusUnauthorized)
			return
		}
		now := s.opts.Now()
		v := s.limiter.take(now, s.opts.RateWindowAligned)
		v.write(w.Header(), s.opts.RateHeaders)
		if !v.ok {
			if s.opts.RetryAfter {
				secs := int64((v.retryAfter + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
			}
			s.writeError(w, http.StatusTooManyRequests, "RATE_LIMITED", "rate limit exceeded", nil)
			s.counts.add(endpoint, http.StatusTooManyRequests)
			return
		}
		o := &s.opts
		if o.Fault5xx+o.FaultDrop+o.FaultTruncate > 0 {
			u := s.draw()
			switch {
			case u < o.Fault5xx:
				code := []int{500, 502, 503}[s.drawN(3)]
				s.writeError(w, code, strings.ToUpper(strings.ReplaceAll(http.StatusText(code), " ", "_")), "simulated upstream failure", nil)
				s.counts.add(endpoint, code)
				return
			case u < o.Fault5xx+o.FaultDrop:
				s.counts.add(endpoint, 0)
				drop(w)
				return
			case u < o.Fault5xx+o.FaultDrop+o.FaultTruncate:
				bw := &bufferWriter{header: w.Header()}
				h(bw, r)
				body := bw.buf.Bytes()
				if bw.status == http.StatusOK {
					body = bytes.TrimSpace(body)
					body = body[:len(body)/2]
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.WriteHeader(bw.status)
				_, _ = w.Write(body)
				s.counts.add(endpoint, bw.status)
				return
			}
		}
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.counts.add(endpoint, sw.status)
	})
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// fieldError is one entry of a validation error's details.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// writeError answers an error. Validation errors (with details) always use
// the details envelope; other errors rotate among the three envelopes seen in
// practice.
func (s *Server) writeError(w http.ResponseWriter, status int, code, message string, details []fieldError) {
	var body any
	variant := 1
	if details == nil {
		variant = int((s.errSeq.Add(1) - 1) % 3)
	}
	switch variant {
	case 0:
		body = struct {
			Success    bool `json:"success"`
			StatusCode int  `json:"status_code"`
			Error      struct {
				Message string `json:"message"`
			} `json:"error"`
		}{StatusCode: status, Error: struct {
			Message string `json:"message"`
		}{message}}
	case 1:
		if details == nil {
			details = []fieldError{}
		}
		type e struct {
			Code    string       `json:"code"`
			Message string       `json:"message"`
			Details []fieldError `json:"details"`
		}
		body = struct {
			Success bool `json:"success"`
			Error   e    `json:"error"`
		}{Error: e{code, message, details}}
	default:
		body = struct {
			Success bool   `json:"success"`
			Error   string `json:"error"`
			Code    string `json:"code"`
		}{Error: message, Code: code}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
