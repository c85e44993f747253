package cekat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const testKey = "sk_live_SECRET_do_not_leak"

// recorder keeps the waits the client asked for instead of sleeping.
type recorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recorder) sleep(_ context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, d)
	return nil
}

func newTestClient(t *testing.T, h http.Handler, mod func(*Options)) (*Client, *recorder) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rec := &recorder{}
	opts := Options{BaseURL: srv.URL, APIKey: testKey, BackofficeURL: srv.URL + "/bo", BackofficeToken: "bo_SECRET",
		MaxRetries: 3, Sleep: rec.sleep, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// scripted answers with a fixed sequence of responses, one per request.
type scripted struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter, r *http.Request)
	calls   int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.calls
	s.calls++
	s.mu.Unlock()
	if i >= len(s.answers) {
		i = len(s.answers) - 1
	}
	s.answers[i](w, r)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func status(code int, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func drop(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// cut promises a long body and sends half of it.
func cut(w http.ResponseWriter, _ *http.Request) {
	body := `{"success":true,"data":[{"id":"m1","timestamp":"2025-03-27T15:00:00Z"}]}`
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	io.WriteString(w, body[:len(body)/2])
}

// cutChunked sends half a JSON document with no length, so only the JSON is wrong.
func cutChunked(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, `{"success":true,"data":[{"id":"m1","timest`)
}

const okPage = `{"success":true,"data":[{"id":"m1","conversation_id":"c1","timestamp":"2025-03-27T15:00:00Z","content":{"text":"a"}}],"pagination":{"has_more":false,"before":"m1"}}`

func TestErrorEnvelopes(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		body     string
		wantKind Kind
		wantEnv  *Envelope
		wantMsg  string
	}{
		{"status_code shape", 404, `{"success":false,"status_code":404,"error":{"message":"Conversation not found"}}`, KindPermanent,
			&Envelope{StatusCode: 404, Message: "Conversation not found"},
			"cekat list GET /messages: HTTP 404: Conversation not found"},
		{"details shape", 400, `{"success":false,"error":{"code":"VALIDATION_ERROR","message":"Invalid request","details":[{"field":"limit","message":"must be <= 100"}]}}`, KindPermanent,
			&Envelope{Code: "VALIDATION_ERROR", Message: "Invalid request", Details: []EnvelopeDetail{{"limit", "must be <= 100"}}},
			"cekat list GET /messages: HTTP 400: Invalid request (code VALIDATION_ERROR); limit: must be <= 100"},
		{"string shape", 401, `{"success":false,"error":"Unauthorized","code":"AUTH_INVALID"}`, KindPermanent,
			&Envelope{Code: "AUTH_INVALID", Message: "Unauthorized"},
			"cekat list GET /messages: HTTP 401: Unauthorized (code AUTH_INVALID)"},
		{"no envelope", 403, `<html>forbidden</html>`, KindPermanent, nil, "cekat list GET /messages: HTTP 403"},
		{"5xx with envelope", 503, `{"success":false,"error":"maintenance","code":503}`, KindTransient,
			&Envelope{Code: "503", Message: "maintenance"},
			"cekat list GET /messages: HTTP 503: maintenance (code 503) (after 4 attempts)"},
		{"success false on 200", 200, `{"success":false,"error":"weird"}`, KindPermanent,
			&Envelope{Message: "weird"}, "cekat list GET /messages: HTTP 200: weird"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, &scripted{answers: []func(http.ResponseWriter, *http.Request){status(tt.code, tt.body)}}, nil)
			_, err := c.ListMessages(context.Background(), "c1", 100, "")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Kind() != tt.wantKind || KindOf(err) != tt.wantKind {
				t.Errorf("kind = %v, want %v", e.Kind(), tt.wantKind)
			}
			if (e.Envelope == nil) != (tt.wantEnv == nil) || (e.Envelope != nil && fmt.Sprint(*e.Envelope) != fmt.Sprint(*tt.wantEnv)) {
				t.Errorf("envelope = %+v, want %+v", e.Envelope, tt.wantEnv)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	type answer = func(http.ResponseWriter, *http.Request)
	tests := []struct {
		name      string
		answers   []answer
		wantCalls int
		wantKind  Kind // when wantErr
		wantErr   bool
	}{
		{"500 then ok", []answer{status(500, `{}`), status(502, ``), status(200, okPage)}, 3, 0, false},
		{"dropped connection then ok", []answer{drop, status(200, okPage)}, 2, 0, false},
		{"cut body then ok", []answer{cut, status(200, okPage)}, 2, 0, false},
		{"cut JSON then ok", []answer{cutChunked, status(200, okPage)}, 2, 0, false},
		{"408 then ok", []answer{status(408, ``), status(200, okPage)}, 2, 0, false},
		{"5xx until retries run out", []answer{status(503, ``)}, 4, KindTransient, true},
		{"400 is not retried", []answer{status(400, `{"success":false,"error":"bad"}`), status(200, okPage)}, 1, KindPermanent, true},
		{"401 is not retried", []answer{status(401, ``), status(200, okPage)}, 1, KindPermanent, true},
		{"404 is not retried", []answer{status(404, ``), status(200, okPage)}, 1, KindPermanent, true},
		{"wrong shape is not retried", []answer{status(200, `{"success":true,"data":{"id":1}}`), status(200, okPage)}, 1, KindPermanent, true},
		{"429 then ok", []answer{status(429, ``, "Retry-After", "2"), status(200, okPage)}, 2, 0, false},
		{"429 until retries run out", []answer{status(429, ``, "Retry-After", "1")}, 4, KindThrottled, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{answers: tt.answers}
			c, rec := newTestClient(t, s, nil)
			page, err := c.ListMessages(context.Background(), "c1", 100, "")
			if s.count() != tt.wantCalls {
				t.Errorf("calls = %d, want %d", s.count(), tt.wantCalls)
			}
			if tt.wantErr {
				if err == nil || KindOf(err) != tt.wantKind {
					t.Fatalf("err = %v (kind %v), want kind %v", err, KindOf(err), tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) != 1 || page.Messages[0].ID != "m1" {
				t.Errorf("page = %+v", page)
			}
			if len(rec.waits) != tt.wantCalls-1 {
				t.Errorf("waits = %v, want %d", rec.waits, tt.wantCalls-1)
			}
		})
	}
}

func TestBackoffGrows(t *testing.T) {
	c, rec := newTestClient(t, &scripted{answers: []func(http.ResponseWriter, *http.Request){status(500, ``)}}, func(o *Options) {
		o.MaxRetries = 6
		o.BackoffInitial = 100 * time.Millisecond
		o.BackoffMax = time.Second
	})
	if _, err := c.GetMessage(context.Background(), "m1"); err == nil {
		t.Fatal("want an error")
	}
	if len(rec.waits) != 6 {
		t.Fatalf("waits = %v", rec.waits)
	}
	for i, w := range rec.waits {
		// Exponential with ±50% jitter, capped at BackoffMax.
		base := min(100*time.Millisecond<<i, time.Second)
		if w < base/2 || w > base*3/2 {
			t.Errorf("wait %d = %v, want about %v", i, w, base)
		}
	}
}

func TestThrottleWait(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		headers  []string
		min, max time.Duration
	}{
		{"Retry-After seconds", []string{"Retry-After", "7"}, 7 * time.Second, 7 * time.Second},
		{"Retry-After date", []string{"Retry-After", now.Add(20 * time.Second).UTC().Format(http.TimeFormat)}, 18 * time.Second, 21 * time.Second},
		{"Retry-After wins over reset", []string{"Retry-After", "3", "X-RateLimit-Reset", fmt.Sprint(now.Add(50 * time.Second).Unix())}, 3 * time.Second, 3 * time.Second},
		{"X-RateLimit-Reset epoch", []string{"X-RateLimit-Reset", fmt.Sprint(now.Add(30 * time.Second).Unix())}, 29 * time.Second, 32 * time.Second},
		{"X-RateLimit-Reset delta", []string{"X-RateLimit-Reset", "12"}, 12 * time.Second, 12 * time.Second},
		{"nothing: a minute or more", nil, time.Minute, time.Minute + 6*time.Second},
		{"garbage: a minute or more", []string{"Retry-After", "soon"}, time.Minute, time.Minute + 6*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newTestClient(t, &scripted{answers: []func(http.ResponseWriter, *http.Request){
				status(429, `{"success":false,"error":"Too many requests"}`, tt.headers...), status(200, okPage)}}, nil)
			if _, err := c.ListMessages(context.Background(), "c1", 0, ""); err != nil {
				t.Fatal(err)
			}
			if len(rec.waits) != 1 || rec.waits[0] < tt.min || rec.waits[0] > tt.max {
				t.Errorf("waits = %v, want one in [%v, %v]", rec.waits, tt.min, tt.max)
			}
		})
	}
}

func TestThrottleLongerThanCapIsReturned(t *testing.T) {
	s := &scripted{answers: []func(http.ResponseWriter, *http.Request){status(429, ``, "Retry-After", "7200")}}
	c, rec := newTestClient(t, s, nil)
	_, err := c.ListMessages(context.Background(), "c1", 0, "")
	var e *Error
	if !errors.As(err, &e) || e.Kind() != KindThrottled || e.RetryAfter != 2*time.Hour {
		t.Fatalf("err = %#v", err)
	}
	if s.count() != 1 || len(rec.waits) != 0 {
		t.Errorf("calls %d waits %v: a daily cap must not be slept through", s.count(), rec.waits)
	}
}

func TestSendIsNotRepeated(t *testing.T) {
	for _, a := range []func(http.ResponseWriter, *http.Request){drop, status(500, ``), cut} {
		s := &scripted{answers: []func(http.ResponseWriter, *http.Request){a, status(200, `{"success":true,"data":{"message_id":"m"}}`)}}
		c, _ := newTestClient(t, s, nil)
		if _, err := c.SendMessage(context.Background(), SendRequest{InboxID: "i", To: "+62", Text: "hi"}); err == nil {
			t.Error("want an error")
		}
		if s.count() != 1 {
			t.Errorf("send tried %d times", s.count())
		}
	}
}

func TestAuthHeaders(t *testing.T) {
	tests := []struct {
		auth       AuthMode
		wantBearer bool
		wantAPIKey bool
	}{
		{AuthBearer, true, false},
		{AuthAPIKey, false, true},
		{AuthBoth, true, true},
		{"", true, true},
	}
	for _, tt := range tests {
		var got http.Header
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.Header.Clone()
			io.WriteString(w, okPage)
		}), func(o *Options) { o.Auth = tt.auth })
		if _, err := c.ListMessages(context.Background(), "c1", 0, ""); err != nil {
			t.Fatal(err)
		}
		if (got.Get("Authorization") == "Bearer "+testKey) != tt.wantBearer || (got.Get("api_key") == testKey) != tt.wantAPIKey {
			t.Errorf("auth %q: headers %v", tt.auth, got)
		}
		if got.Get("access_token") != "" {
			t.Errorf("auth %q: backoffice token sent to the messages API", tt.auth)
		}
	}
}

func TestBackofficeDelete(t *testing.T) {
	for _, mode := range []BackofficeAuthMode{BackofficeAccessToken, BackofficeBearer} {
		var got *http.Request
		var body map[string][]string
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r
			json.NewDecoder(r.Body).Decode(&body)
			io.WriteString(w, `{"success":true,"data":{"deleted":2,"conversation_ids":["c1","c2"]}}`)
		}), func(o *Options) { o.BackofficeAuth = mode })
		res, err := c.DeleteConversations(context.Background(), []string{"c1", "c2"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 2 || len(res.ConversationIDs) != 2 || strings.Join(body["conversation_ids"], ",") != "c1,c2" {
			t.Errorf("result %+v body %v", res, body)
		}
		if got.URL.Path != "/bo/v1/backoffice/conversations-delete" || got.Method != http.MethodPost {
			t.Errorf("request %s %s", got.Method, got.URL.Path)
		}
		if got.Header.Get("api_key") != "" || strings.Contains(got.Header.Get("Authorization"), testKey) {
			t.Errorf("API key sent to the backoffice")
		}
		switch mode {
		case BackofficeAccessToken:
			if got.Header.Get("access_token") != "bo_SECRET" {
				t.Errorf("headers %v", got.Header)
			}
		case BackofficeBearer:
			if got.Header.Get("Authorization") != "Bearer bo_SECRET" {
				t.Errorf("headers %v", got.Header)
			}
		}
	}
}

func TestListPagination(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		wantIDs       string
		wantBad       int
		wantHasMore   bool
		wantBefore    string
		wantPaginated bool
	}{
		{"documented", `{"success":true,"data":[{"id":"msg_001","timestamp":"2025-03-27T15:00:00Z"},{"id":"msg_002","timestamp":"2025-03-27T15:01:00Z"}],"pagination":{"has_more":true,"before":"msg_001"}}`,
			"msg_001,msg_002", 0, true, "msg_001", true},
		{"no pagination object: whole history", `{"success":true,"data":[{"id":"a","created_at":"2025-03-27 15:00:00"}]}`,
			"a", 0, false, "", false},
		{"has_more without before: oldest id", `{"success":true,"data":[{"id":"x","timestamp":"2025-03-27T15:00:00Z"},{"id":"y","timestamp":"2025-03-27T15:00:00Z"}],"pagination":{"has_more":true}}`,
			"x,y", 0, true, "x", true},
		{"bad records are set aside", `{"success":true,"data":[{"id":"x","timestamp":"2025-03-27T15:00:00Z"},{"timestamp":"2025-03-27T15:00:00Z"},7,{"id":"z","timestamp":"nope"}],"pagination":{"has_more":false}}`,
			"x", 3, false, "", true},
		{"null data", `{"success":true,"data":null,"pagination":{"has_more":false}}`, "", 0, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var query string
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				query = r.URL.RawQuery
				io.WriteString(w, tt.body)
			}), nil)
			page, err := c.ListMessages(context.Background(), "conv 1", 100, "msg_9")
			if err != nil {
				t.Fatal(err)
			}
			if query != "before=msg_9&conversation_id=conv+1&limit=100" {
				t.Errorf("query = %s", query)
			}
			var ids []string
			for _, m := range page.Messages {
				ids = append(ids, m.ID)
				if m.ConversationID != "conv 1" {
					t.Errorf("conversation id not filled in: %q", m.ConversationID)
				}
			}
			if strings.Join(ids, ",") != tt.wantIDs || len(page.Bad) != tt.wantBad || page.HasMore != tt.wantHasMore ||
				page.Before != tt.wantBefore || page.Paginated != tt.wantPaginated {
				t.Errorf("page = ids %v bad %d has_more %v before %q paginated %v", ids, len(page.Bad), page.HasMore, page.Before, page.Paginated)
			}
			for _, b := range page.Bad {
				if len(b.Raw) == 0 {
					t.Errorf("bad record without raw bytes: %v", b)
				}
			}
		})
	}
}

func TestGetMessageUndecodable(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"success":true,"data":{"id":"m1","timestamp":"never"}}`)
	}), nil)
	_, err := c.GetMessage(context.Background(), "m1")
	var de *DecodeError
	if KindOf(err) != KindPermanent || !errors.As(err, &de) || string(de.Raw) == "" {
		t.Fatalf("err = %v, want a permanent error holding the raw record", err)
	}
}

func TestSendBodies(t *testing.T) {
	tests := []struct {
		style SendBody
		req   SendRequest
		want  string
	}{
		{SendDocumented, SendRequest{InboxID: "inbox_abc123", To: "+62812345678", Text: "Hello"},
			`{"content":{"text":"Hello"},"inbox_id":"inbox_abc123","to":"+62812345678","type":"text"}`},
		{SendDocumented, SendRequest{InboxID: "i", To: "+62", Type: "image", MediaURL: "https://x/a.png", Caption: "c", ReplyTo: "msg_1"},
			`{"content":{"caption":"c","url":"https://x/a.png"},"inbox_id":"i","reply_to":"msg_1","to":"+62","type":"image"}`},
		{SendReal, SendRequest{ConversationID: "c1", To: "+62", Text: "Hello"},
			`{"conversation_id":"c1","media_type":"text","message":"Hello","receiver":"+62"}`},
	}
	for _, tt := range tests {
		var got string
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got = string(b)
			io.WriteString(w, `{"success":true,"data":{"message_id":"msg_xyz789","status":"sent","to":"+62","timestamp":"2025-03-27T15:30:00Z"}}`)
		}), func(o *Options) { o.SendBody = tt.style })
		res, err := c.SendMessage(context.Background(), tt.req)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s body = %s, want %s", tt.style, got, tt.want)
		}
		if res.MessageID != "msg_xyz789" || res.Status != "sent" || res.Timestamp.Unix() != 1743089400 {
			t.Errorf("result %+v", res)
		}
	}
}

// TestKeyNeverLeaks collects every error string the client can produce and
// checks that neither credential appears in any.
func TestKeyNeverLeaks(t *testing.T) {
	answers := []func(http.ResponseWriter, *http.Request){
		status(401, `{"success":false,"error":"Unauthorized"}`), status(500, ``), drop, cut, cutChunked,
		status(429, ``, "Retry-After", "999999"), status(200, `{"success":true,"data":{"id":"m","timestamp":"x"}}`),
	}
	for i, a := range answers {
		c, _ := newTestClient(t, http.HandlerFunc(a), func(o *Options) { o.MaxRetries = 0 })
		var errs []error
		_, err := c.ListMessages(context.Background(), "c1", 0, "")
		errs = append(errs, err)
		_, err = c.GetMessage(context.Background(), "m")
		errs = append(errs, err)
		_, err = c.DeleteConversations(context.Background(), []string{"c"})
		errs = append(errs, err)
		for _, err := range errs {
			if err == nil {
				continue
			}
			s := err.Error() + fmt.Sprintf("%+v %#v", err, err)
			if strings.Contains(s, testKey) || strings.Contains(s, "bo_SECRET") {
				t.Errorf("answer %d: a credential leaked: %s", i, s)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{
		{BaseURL: "", APIKey: "k"},
		{BaseURL: "api.cekat.ai", APIKey: "k"},
		{BaseURL: "ftp://x", APIKey: "k"},
		{BaseURL: "http://x"},
		{BaseURL: "http://x", APIKey: "k", Auth: "basic"},
		{BaseURL: "http://x", APIKey: "k", BackofficeURL: "nope"},
		{BaseURL: "http://x", APIKey: "k", BackofficeAuth: "cookie"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// Every request the server receives is reported, including those Go's
// transport re-sends by itself after a reused connection dropped.
func TestEveryAttemptIsReported(t *testing.T) {
	var served, reported atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1)%3 == 0 {
			drop(w, r)
			return
		}
		io.WriteString(w, okPage)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, APIKey: testKey, MaxRetries: 10, Sleep: (&recorder{}).sleep,
		OnRequest: func(RequestInfo) { reported.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := c.ListMessages(context.Background(), "c1", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if served.Load() != reported.Load() {
		t.Errorf("server received %d requests, client reported %d", served.Load(), reported.Load())
	}
}

// oddIDs are ids real servers hand out and a URL must carry intact: every
// character that means something in a path, a query or a fragment.
var oddIDs = []string{
	"q'1", "a/b", "a//b/", "what?x=1&y", "100%", "%41", "%2F", "#frag", "with space", "a+b", "a;b,c",
	"ünïcödé", "日本語", "😀", ".", "..", "tab\there", `"quoted"`, "<tag>", "back\\slash",
}

func TestIDsAreEscapedOnce(t *testing.T) {
	for _, prefix := range []string{"", "/api", "/api%20v1"} {
		var mu sync.Mutex
		var got *http.Request
		var body map[string]any
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			got = r
			body = nil
			json.NewDecoder(r.Body).Decode(&body)
			switch {
			case strings.HasSuffix(r.URL.Path, "/conversations-delete"):
				io.WriteString(w, `{"success":true,"data":{"deleted":1,"conversation_ids":[]}}`)
			case strings.HasSuffix(r.URL.Path, "/messages/whatsapp"):
				io.WriteString(w, `{"success":true,"data":{"message_id":"m9","status":"sent"}}`)
			case strings.HasSuffix(r.URL.Path, "/messages"):
				io.WriteString(w, okPage)
			default:
				io.WriteString(w, `{"success":true,"data":{"id":"m1","timestamp":"2025-03-27T15:00:00Z"}}`)
			}
		}), func(o *Options) {
			o.BaseURL += prefix
			o.BackofficeURL += prefix
			o.SendBody = SendReal
		})
		wantPrefix := prefix + "/messages/"
		for _, id := range oddIDs {
			ctx := context.Background()
			if _, err := c.GetMessage(ctx, id); err != nil {
				t.Fatalf("GetMessage(%q): %v", id, err)
			}
			// A strict server decodes the path once: the segment after
			// /messages/ must be one segment that decodes to the id.
			esc := got.URL.EscapedPath()
			seg, ok := strings.CutPrefix(esc, wantPrefix)
			if !ok || strings.Contains(seg, "/") {
				t.Errorf("GetMessage(%q): server got path %q, want %s<one segment>", id, esc, wantPrefix)
			} else if dec, err := url.PathUnescape(seg); err != nil || dec != id {
				t.Errorf("GetMessage(%q): server got segment %q, decoded once %q (%v)", id, seg, dec, err)
			}
			if got.URL.RawQuery != "" || got.URL.Fragment != "" {
				t.Errorf("GetMessage(%q): id leaked into query %q or fragment %q", id, got.URL.RawQuery, got.URL.Fragment)
			}

			if _, err := c.ListMessages(ctx, id, 100, id); err != nil {
				t.Fatalf("ListMessages(%q): %v", id, err)
			}
			if q := got.URL.Query(); q.Get("conversation_id") != id || q.Get("before") != id || q.Get("limit") != "100" || len(q) != 3 {
				t.Errorf("ListMessages(%q): server got query %q = %v", id, got.URL.RawQuery, q)
			}
			if got.URL.EscapedPath() != prefix+"/messages" {
				t.Errorf("ListMessages(%q): path %q", id, got.URL.EscapedPath())
			}

			if _, err := c.DeleteConversations(ctx, []string{id}); err != nil {
				t.Fatalf("DeleteConversations(%q): %v", id, err)
			}
			if ids, _ := body["conversation_ids"].([]any); len(ids) != 1 || ids[0] != id {
				t.Errorf("DeleteConversations(%q): server got body %v", id, body)
			}

			if _, err := c.SendMessage(ctx, SendRequest{ConversationID: id, To: "+62812345678", Text: id}); err != nil {
				t.Fatalf("SendMessage(%q): %v", id, err)
			}
			if body["conversation_id"] != id || body["message"] != id {
				t.Errorf("SendMessage(%q): server got body %v", id, body)
			}
		}
	}
}

func TestEmptyIDIsNotTheList(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, okPage)
	}), nil)
	if _, err := c.GetMessage(context.Background(), ""); KindOf(err) != KindPermanent || err == nil {
		t.Errorf("GetMessage(\"\") = %v, want a permanent error", err)
	}
	if calls.Load() != 0 {
		t.Errorf("GetMessage(\"\") sent %d requests", calls.Load())
	}
}

// TestDeleteIsNotRepeated: a delete that may have reached the server is
// sent once, whatever went wrong with its answer.
func TestDeleteIsNotRepeated(t *testing.T) {
	ok := status(200, `{"success":true,"data":{"deleted":1,"conversation_ids":["c1"]}}`)
	for _, a := range []func(http.ResponseWriter, *http.Request){drop, status(502, ``), cut, cutChunked} {
		s := &scripted{answers: []func(http.ResponseWriter, *http.Request){a, ok}}
		c, _ := newTestClient(t, s, nil)
		if _, err := c.DeleteConversations(context.Background(), []string{"c1"}); err == nil {
			t.Error("want an error")
		}
		if s.count() != 1 {
			t.Errorf("delete sent %d times", s.count())
		}
	}
}

// TestUnsentDeleteIsRetried: a delete that could not even be written (the
// connection was refused) cannot have been applied, and is tried again.
func TestUnsentDeleteIsRetried(t *testing.T) {
	s := &scripted{answers: []func(http.ResponseWriter, *http.Request){status(200, `{"success":true,"data":{"deleted":1,"conversation_ids":["c1"]}}`)}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	var refused atomic.Int32
	dial := (&net.Dialer{}).DialContext
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if refused.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return dial(ctx, network, addr)
	}}
	rec := &recorder{}
	c, err := New(Options{BaseURL: srv.URL, APIKey: testKey, BackofficeURL: srv.URL + "/bo", BackofficeToken: "bo_SECRET",
		MaxRetries: 3, Sleep: rec.sleep, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.DeleteConversations(context.Background(), []string{"c1"})
	if err != nil || res.Deleted != 1 {
		t.Fatalf("delete after a refused connection: %+v %v", res, err)
	}
	if s.count() != 1 || refused.Load() != 2 {
		t.Errorf("%d requests reached the server, %d dials; want 1 and 2", s.count(), refused.Load())
	}
}
