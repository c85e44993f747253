// Package cekat is a client for the Cekat "Classic" messages API: list the
// messages of a conversation, get one message, delete conversations through
// the backoffice, and send a WhatsApp message. It speaks both the documented
// contract and what real deployments answer (see
// shared/notes/cekat-api-in-practice.md).
package cekat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// AuthMode selects the header(s) carrying the API key.
type AuthMode string

const (
	AuthBearer AuthMode = "bearer"  // Authorization: Bearer KEY (documented)
	AuthAPIKey AuthMode = "api_key" // api_key: KEY (real clients)
	AuthBoth   AuthMode = "both"    // both headers, as the vendor's n8n node does
)

// BackofficeAuthMode selects the header carrying the backoffice credential.
type BackofficeAuthMode string

const (
	BackofficeAccessToken BackofficeAuthMode = "access_token" // access_token: TOKEN (real)
	BackofficeBearer      BackofficeAuthMode = "bearer"       // Authorization: Bearer TOKEN (documented)
)

// SendBody selects the request body of SendMessage.
type SendBody string

const (
	SendDocumented SendBody = "documented" // {inbox_id, to, type, content}
	SendReal       SendBody = "real"       // {conversation_id, receiver, message, media_type, file_url}
)

// Limiter is the client-side rate limiter every call passes through. Wait
// blocks until a request may be sent; Observe lets it adapt to what the
// server said (X-RateLimit-*, Retry-After).
type Limiter interface {
	Wait(ctx context.Context, endpoint string) error
	Observe(endpoint string, status int, header http.Header)
}

// RequestInfo describes one HTTP attempt, for counting and metrics.
type RequestInfo struct {
	// Context is the call's context: what it carries (the run the call is
	// made for) attributes the attempt.
	Context  context.Context
	Endpoint string
	Status   int // 0 when no answer arrived
	Duration time.Duration
	Err      error
}

// Options configures a Client. BaseURL and APIKey are required; the
// backoffice fields only for DeleteConversations.
type Options struct {
	BaseURL string
	// OpenAPIURL is the base of the New Open API (conversation list);
	// default BaseURL + "/api".
	OpenAPIURL      string
	APIKey          string
	Auth            AuthMode // default AuthBoth
	BackofficeURL   string
	BackofficeToken string
	BackofficeAuth  BackofficeAuthMode // default BackofficeAccessToken
	SendBody        SendBody           // default SendDocumented
	// Location is the zone of time stamps that carry none (default Asia/Jakarta).
	Location *time.Location
	// Timeout bounds one attempt, including reading the body (default 30s).
	Timeout time.Duration
	// MaxRetries bounds the retries of transient and throttled failures.
	MaxRetries int
	// ThrottleWait is the pause after a 429 without Retry-After or
	// X-RateLimit-Reset (default one minute; a random tenth is added).
	ThrottleWait time.Duration
	// MaxThrottleWait caps a pause the server asks for; a longer one (a
	// daily cap) is returned as a throttled error for the caller to report.
	MaxThrottleWait time.Duration
	// BackoffInitial and BackoffMax shape the exponential backoff of
	// transient failures (defaults 500ms and 30s, with jitter).
	BackoffInitial, BackoffMax time.Duration
	// HTTPClient sends the requests; a copy of it is used, whose redirect
	// policy is CheckRedirect before its own.
	HTTPClient *http.Client
	Limiter    Limiter
	OnRequest  func(RequestInfo)
	UserAgent  string
	// Sleep waits between attempts; tests replace it to observe the waits.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client talks to one Cekat account. It is safe for concurrent use.
type Client struct {
	opts    Options
	base    *url.URL
	openAPI *url.URL
	backoff *url.URL
	http    *http.Client
	// headers: those of an API call, and of a backoffice call.
	headers [2]http.Header
	// readBuffers holds buffers for answers of unknown length (readBody).
	readBuffers sync.Pool
}

// maxBody bounds one answer. A conversation answered whole, without
// pagination, is the largest thing the API sends.
const maxBody = 512 << 20

// New checks the options and returns a client.
func New(opts Options) (*Client, error) {
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("cekat: base URL: %w", err)
	}
	if opts.APIKey == "" {
		return nil, errors.New("cekat: API key is empty")
	}
	c := &Client{base: base, http: opts.HTTPClient}
	if opts.OpenAPIURL == "" {
		opts.OpenAPIURL = base.String() + "/api"
	}
	if c.openAPI, err = parseBaseURL(opts.OpenAPIURL); err != nil {
		return nil, fmt.Errorf("cekat: open API URL: %w", err)
	}
	if opts.BackofficeURL != "" {
		if c.backoff, err = parseBaseURL(opts.BackofficeURL); err != nil {
			return nil, fmt.Errorf("cekat: backoffice URL: %w", err)
		}
	}
	switch opts.Auth {
	case "":
		opts.Auth = AuthBoth
	case AuthBearer, AuthAPIKey, AuthBoth:
	default:
		return nil, fmt.Errorf("cekat: unknown auth mode %q", opts.Auth)
	}
	switch opts.BackofficeAuth {
	case "":
		opts.BackofficeAuth = BackofficeAccessToken
	case BackofficeAccessToken, BackofficeBearer:
	default:
		return nil, fmt.Errorf("cekat: unknown backoffice auth mode %q", opts.BackofficeAuth)
	}
	switch opts.SendBody {
	case "":
		opts.SendBody = SendDocumented
	case SendDocumented, SendReal:
	default:
		return nil, fmt.Errorf("cekat: unknown send body %q", opts.SendBody)
	}
	if opts.Location == nil {
		if opts.Location, err = time.LoadLocation("Asia/Jakarta"); err != nil {
			return nil, fmt.Errorf("cekat: default zone: %w", err)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	if opts.ThrottleWait <= 0 {
		opts.ThrottleWait = time.Minute
	}
	if opts.MaxThrottleWait <= 0 {
		opts.MaxThrottleWait = 15 * time.Minute
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "cekat-archiver"
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if c.http == nil {
		// The default transport keeps 2 idle connections per host, so the
		// detail workers opened a new TCP connection for one call in seven.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.http = &http.Client{Transport: t}
	}
	c.http = withRedirectPolicy(c.http)
	c.opts = opts
	for i, backoffice := range []bool{false, true} {
		h := http.Header{"Accept": {"application/json"}, "User-Agent": {opts.UserAgent}}
		c.authorize(h, backoffice)
		c.headers[i] = h
	}
	return c, nil
}

func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return u, nil
}

// Location is the zone used for time stamps that carry none.
func (c *Client) Location() *time.Location { return c.opts.Location }

// Page is one answer of the list endpoint.
type Page struct {
	// Messages are in the order the API sent them (oldest first).
	Messages []Message
	// Bad holds the items that could not be decoded, raw, for quarantine.
	Bad []*DecodeError
	// HasMore and Before come from the pagination object: pass Before back
	// to get the next older page.
	HasMore bool
	Before  string
	// Paginated is false when the answer had no pagination object: such an
	// answer is the whole history of the conversation.
	Paginated bool
}

// ListMessages returns one page of a conversation's messages: the newest
// page when before is empty, else the page older than the message before.
func (c *Client) ListMessages(ctx context.Context, conversationID string, limit int, before string) (*Page, error) {
	q := url.Values{"conversation_id": {conversationID}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before != "" {
		q.Set("before", before)
	}
	req := request{endpoint: EndpointList, method: http.MethodGet, base: c.base, path: "/messages", query: q, retry: true}
	body, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	env, ok := readEnvelope(body, true)
	if !ok {
		// Not the envelope's shape: encoding/json says best how.
		var w struct {
			Success    *bool           `json:"success"`
			Data       json.RawMessage `json:"data"`
			Pagination *struct {
				HasMore json.RawMessage `json:"has_more"`
				Before  json.RawMessage `json:"before"`
			} `json:"pagination"`
		}
		err := json.Unmarshal(body, &w)
		if err == nil {
			err = errors.New("unreadable envelope")
		}
		return nil, req.fail(0, nil, fmt.Errorf("%w: %v", ErrUnexpectedShape, err), KindPermanent)
	}
	if env.success == "false" {
		return nil, req.failBody(http.StatusOK, body, KindPermanent)
	}
	if !isNull(env.data) && env.data[0] != '[' {
		return nil, req.fail(0, nil, fmt.Errorf("%w: data is not an array", ErrUnexpectedShape), KindPermanent)
	}
	page := &Page{Messages: make([]Message, 0, 100)}
	eachElement(env.data, func(i int, item []byte) {
		m, err := decodeValidMessage(item, c.opts.Location)
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Index = i
				page.Bad = append(page.Bad, de)
			}
			return
		}
		if m.ConversationID == "" {
			m.ConversationID = conversationID
		}
		page.Messages = append(page.Messages, m)
	})
	if !isNull(env.pagination) {
		page.Paginated = true
		p := fields{"has_more": env.hasMore, "before": env.before}
		page.HasMore = p.boolean("has_more")
		page.Before = p.str("before")
		if page.HasMore && page.Before == "" {
			// The documented cursor is the oldest message of the page.
			if len(page.Messages) == 0 {
				return nil, req.fail(0, nil, fmt.Errorf("%w: has_more without a before cursor", ErrUnexpectedShape), KindPermanent)
			}
			page.Before = page.Messages[0].ID
		}
	}
	return page, nil
}

// GetMessage returns one message with whatever the detail answer adds
// (status, recipient, delivered_at, read_at). An answer that cannot be
// decoded is a permanent error wrapping a *DecodeError with the raw bytes.
func (c *Client) GetMessage(ctx context.Context, id string) (Message, error) {
	req := request{endpoint: EndpointDetail, method: http.MethodGet, base: c.base, path: "/messages/" + pathSegment(id), retry: true}
	if id == "" {
		// "/messages/" is the list endpoint, not a message.
		return Message{}, req.fail(0, nil, errors.New("empty message id"), KindPermanent)
	}
	body, err := c.do(ctx, req)
	if err != nil {
		return Message{}, err
	}
	data, err := successData(body)
	if err != nil {
		return Message{}, req.failData(body, err)
	}
	m, err := decodeValidMessage(data, c.opts.Location)
	if err != nil {
		return Message{}, req.fail(0, nil, err, KindPermanent)
	}
	return m, nil
}

// DeleteResult is the answer of the backoffice delete.
type DeleteResult struct {
	Deleted         int
	ConversationIDs []string
}

// DeleteConversations deletes conversations and their messages upstream,
// through the backoffice host with its own credential. Irreversible.
func (c *Client) DeleteConversations(ctx context.Context, ids []string) (DeleteResult, error) {
	if c.backoff == nil || c.opts.BackofficeToken == "" {
		return DeleteResult{}, errors.New("cekat delete: backoffice URL and token are not configured")
	}
	body, err := json.Marshal(map[string][]string{"conversation_ids": ids})
	if err != nil {
		return DeleteResult{}, fmt.Errorf("cekat delete: %w", err)
	}
	// A delete is sent once: a second one would answer that it deleted
	// nothing, and the caller could no longer tell its own deletes from
	// someone else's. Only a request that was never written is sent again.
	req := request{endpoint: EndpointDelete, method: http.MethodPost, base: c.backoff, path: "/v1/backoffice/conversations-delete", body: body, backoffice: true}
	answer, err := c.do(ctx, req)
	if err != nil {
		return DeleteResult{}, err
	}
	data, err := successData(answer)
	if err != nil {
		return DeleteResult{}, req.failData(answer, err)
	}
	var w struct {
		Deleted         json.RawMessage   `json:"deleted"`
		ConversationIDs []json.RawMessage `json:"conversation_ids"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return DeleteResult{}, req.fail(0, nil, fmt.Errorf("%w: %v", ErrUnexpectedShape, err), KindPermanent)
	}
	var res DeleteResult
	if n := unquoteID(w.Deleted); n != "" {
		if res.Deleted, err = strconv.Atoi(n); err != nil {
			return DeleteResult{}, req.fail(0, nil, fmt.Errorf("%w: deleted=%s", ErrUnexpectedShape, n), KindPermanent)
		}
	}
	for _, id := range w.ConversationIDs {
		res.ConversationIDs = append(res.ConversationIDs, unquoteID(id))
	}
	return res, nil
}

// SendRequest is a message to send. With the documented body InboxID and To
// address it; with the real body ConversationID and To (the receiver).
type SendRequest struct {
	InboxID        string
	ConversationID string
	To             string
	Type           string // text (default), image, video, document, audio
	Text           string
	MediaURL       string
	Caption        string
	Filename       string
	ReplyTo        string
}

// SendResult is the answer of a send.
type SendResult struct {
	MessageID string
	Status    string
	To        string
	Timestamp time.Time
}

// SendMessage sends a WhatsApp message. It is not retried after a failure
// that may have reached the server, so a message is never sent twice.
func (c *Client) SendMessage(ctx context.Context, s SendRequest) (SendResult, error) {
	if s.Type == "" {
		s.Type = "text"
	}
	var payload any
	switch c.opts.SendBody {
	case SendReal:
		p := map[string]string{"conversation_id": s.ConversationID, "receiver": s.To, "message": firstNonEmpty(s.Text, s.Caption), "media_type": s.Type}
		if s.MediaURL != "" {
			p["file_url"] = s.MediaURL
		}
		payload = p
	default:
		content := map[string]string{}
		for k, v := range map[string]string{"text": s.Text, "url": s.MediaURL, "caption": s.Caption, "filename": s.Filename} {
			if v != "" {
				content[k] = v
			}
		}
		p := map[string]any{"inbox_id": s.InboxID, "to": s.To, "type": s.Type, "content": content}
		if s.ReplyTo != "" {
			p["reply_to"] = s.ReplyTo
		}
		payload = p
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return SendResult{}, fmt.Errorf("cekat send: %w", err)
	}
	req := request{endpoint: EndpointSend, method: http.MethodPost, base: c.base, path: "/messages/whatsapp", body: body}
	answer, err := c.do(ctx, req)
	if err != nil {
		return SendResult{}, err
	}
	data, err := successData(answer)
	if err != nil {
		return SendResult{}, req.failData(answer, err)
	}
	f := fields{}
	if err := json.Unmarshal(data, (*map[string]json.RawMessage)(&f)); err != nil {
		return SendResult{}, req.fail(0, nil, fmt.Errorf("%w: %v", ErrUnexpectedShape, err), KindPermanent)
	}
	res := SendResult{MessageID: firstNonEmpty(f.str("message_id"), f.str("id")), Status: f.str("status"), To: f.str("to")}
	if raw, ok := f["timestamp"]; ok && !isNull(raw) {
		if t, err := parseTimeJSON(raw, c.opts.Location); err == nil {
			res.Timestamp = t
		}
	}
	return res, nil
}

// successData returns the data member of a success envelope: a sub-slice of
// body, which must be valid JSON.
func successData(body []byte) (json.RawMessage, error) {
	env, ok := readEnvelope(body, false)
	if !ok {
		var w struct {
			Success *bool           `json:"success"`
			Data    json.RawMessage `json:"data"`
		}
		err := json.Unmarshal(body, &w)
		if err == nil {
			err = errors.New("unreadable envelope")
		}
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedShape, err)
	}
	if env.success == "false" {
		return nil, errUnsuccessful
	}
	if isNull(env.data) {
		return nil, fmt.Errorf("%w: no data", ErrUnexpectedShape)
	}
	return env.data, nil
}

// envelope is the wrapper of every answer, as raw sub-slices of the body.
type envelope struct {
	success                           string // "true", "false" or "" (absent or null)
	data, pagination, hasMore, before []byte
}

// readEnvelope reads body (valid JSON) in one pass, matching keys without
// regard to case as encoding/json did; ok is false when body is not an
// object or success (or, withPagination, pagination) has a type
// encoding/json would have refused.
func readEnvelope(body []byte, withPagination bool) (env envelope, ok bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return env, false
	}
	ok = true
	eachMember(body, func(key, val []byte) {
		switch {
		case bytes.EqualFold(key, []byte("success")):
			switch string(val) {
			case "true", "false":
				env.success = string(val)
			case "null":
				env.success = ""
			default:
				ok = false
			}
		case bytes.EqualFold(key, []byte("data")):
			env.data = val
		case withPagination && bytes.EqualFold(key, []byte("pagination")):
			env.pagination, env.hasMore, env.before = val, nil, nil
			if isNull(val) {
				env.pagination = nil
				return
			}
			if val[0] != '{' {
				ok = false
				return
			}
			eachMember(val, func(k, v []byte) {
				switch {
				case bytes.EqualFold(k, []byte("has_more")):
					env.hasMore = v
				case bytes.EqualFold(k, []byte("before")):
					env.before = v
				}
			})
		}
	})
	return env, ok
}

// decodeValidMessage decodes a message from raw, a span of an answer body
// that is valid JSON, without copying it: the Message's Raw aliases the body,
// which nothing writes to once read.
func decodeValidMessage(raw []byte, loc *time.Location) (Message, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return DecodeMessage(raw, loc)
	}
	return decodeMessage(raw, loc)
}

var errUnsuccessful = errors.New("success is false")

// pathSegment escapes an opaque id into one path segment, exactly once. A
// segment of dots alone would be a dot segment that servers remove, so its
// dots are escaped too.
func pathSegment(id string) string {
	s := url.PathEscape(id)
	if s == "." || s == ".." {
		s = strings.ReplaceAll(s, ".", "%2E")
	}
	return s
}

type request struct {
	endpoint string
	method   string
	base     *url.URL
	// path is escaped already (see pathSegment) and appended to the base's
	// escaped path as it is: ids are escaped once, never twice.
	path       string
	query      url.Values
	body       []byte
	retry      bool // transient failures may be retried (the call is idempotent); else only those never written
	backoffice bool
}

func (r request) fail(status int, env *Envelope, cause error, kind Kind) *Error {
	return &Error{Endpoint: r.endpoint, Method: r.method, Path: r.path, Status: status, Envelope: env, Err: cause, kind: kind}
}

func (r request) failBody(status int, body []byte, kind Kind) *Error {
	var env *Envelope
	if e, ok := decodeEnvelope(body); ok {
		env = &e
	}
	return r.fail(status, env, nil, kind)
}

func (r request) failData(body []byte, err error) *Error {
	if errors.Is(err, errUnsuccessful) {
		return r.failBody(http.StatusOK, body, KindPermanent)
	}
	return r.fail(0, nil, err, KindPermanent)
}

// do sends a request, retrying transient failures with exponential backoff
// and jitter and pausing on 429 as the server asks, and returns the body of
// a 2xx answer that is valid JSON.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = c.opts.BackoffInitial
	bo.MaxInterval = c.opts.BackoffMax
	bo.Multiplier = 2
	bo.RandomizationFactor = 0.5
	bo.Reset()

	for attempt := 1; ; attempt++ {
		body, ferr := c.attempt(ctx, r)
		if ferr == nil {
			return body, nil
		}
		ferr.Attempts = attempt
		if ctx.Err() != nil || ferr.final {
			return nil, ferr
		}
		var wait time.Duration
		switch ferr.kind {
		case KindThrottled:
			if ferr.RetryAfter > c.opts.MaxThrottleWait {
				return nil, ferr
			}
			wait = ferr.RetryAfter
		case KindTransient:
			if !r.retry && !ferr.unsent {
				// The request may have been applied: a send or a delete
				// is never repeated.
				return nil, ferr
			}
			wait = bo.NextBackOff()
		default:
			return nil, ferr
		}
		if attempt > c.opts.MaxRetries {
			return nil, ferr
		}
		if err := c.opts.Sleep(ctx, wait); err != nil {
			return nil, ferr
		}
	}
}

func (c *Client) attempt(ctx context.Context, r request) ([]byte, *Error) {
	if c.opts.Limiter != nil {
		if err := c.opts.Limiter.Wait(ctx, r.endpoint); err != nil {
			// A spent budget is not retried: the caller stops and reports.
			e := r.fail(0, nil, fmt.Errorf("rate limiter: %w", err), KindTransient)
			e.final = true
			return nil, e
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()

	var err error
	u := *r.base
	u.RawPath = strings.TrimRight(u.EscapedPath(), "/") + r.path
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, r.fail(0, nil, err, KindPermanent)
	}
	u.RawQuery = r.query.Encode()
	var reqBody io.Reader
	if r.body != nil {
		reqBody = bytes.NewReader(r.body)
	}
	// The URL is built above and set as is: NewRequest would parse it again.
	req, err := http.NewRequestWithContext(actx, r.method, "/", reqBody)
	if err != nil {
		return nil, r.fail(0, nil, err, KindPermanent)
	}
	req.URL, req.Host = &u, u.Host
	req.Header = c.header(r.backoffice, r.body != nil)

	// Go's transport re-sends an idempotent request by itself when a reused
	// connection closes without an answer. The server may have counted the
	// lost attempt against the rate limit, so every write is reported.
	var writes atomic.Int32
	req = req.WithContext(httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { writes.Add(1) },
	}))
	start := time.Now()
	resp, err := c.http.Do(req)
	for range writes.Load() - 1 {
		c.observe(ctx, r.endpoint, 0, start, nil, errors.New("connection closed without an answer; re-sent by the transport"))
	}
	if err != nil {
		c.observe(ctx, r.endpoint, 0, start, nil, err)
		// url.Error names the URL, which holds no secret: keys travel in headers.
		if errors.Is(err, ErrRedirectRefused) {
			return nil, r.fail(0, nil, err, KindPermanent)
		}
		e := r.fail(0, nil, err, KindTransient)
		e.unsent = writes.Load() == 0 && ctx.Err() == nil
		return nil, e
	}
	body, readErr := c.readBody(resp)
	resp.Body.Close()
	c.observe(ctx, r.endpoint, resp.StatusCode, start, resp.Header, readErr)

	status := resp.StatusCode
	switch {
	case readErr != nil:
		return nil, r.fail(status, nil, fmt.Errorf("read body: %w", readErr), KindTransient)
	case len(body) > maxBody:
		return nil, r.fail(status, nil, fmt.Errorf("body larger than %d bytes", maxBody), KindPermanent)
	case status == http.StatusTooManyRequests:
		e := r.failBody(status, body, KindThrottled)
		e.RetryAfter = c.throttleWait(resp.Header, time.Now())
		return nil, e
	case status < 200 || status > 299:
		return nil, r.failBody(status, body, kindForStatus(status))
	case !json.Valid(body):
		return nil, r.fail(status, nil, fmt.Errorf("%w (%d bytes)", ErrMalformedBody, len(body)), KindTransient)
	}
	return body, nil
}

// readBody reads an answer, up to one byte past maxBody, into one
// allocation of its size (io.ReadAll's doubling would allocate up to twice
// the answer, the engine's largest allocations). The answer is kept (its
// messages' raw JSON points into it), so one of unknown length is read into
// a pooled buffer and copied out.
func (c *Client) readBody(resp *http.Response) ([]byte, error) {
	r := io.LimitReader(resp.Body, maxBody+1)
	if resp.ContentLength >= 0 && resp.ContentLength <= maxBody {
		b := make([]byte, 0, resp.ContentLength+1) // room to see the end
		return readAll(r, b)
	}
	buf, _ := c.readBuffers.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	b, err := readAll(r, (*buf)[:0])
	body := bytes.Clone(b)
	if cap(b) <= maxPooledBuffer {
		*buf = b
		c.readBuffers.Put(buf)
	}
	return body, err
}

// maxPooledBuffer: a larger buffer (a conversation answered whole) is left
// to the collector rather than held.
const maxPooledBuffer = 4 << 20

// readAll is io.ReadAll into b.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow as append does
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (c *Client) observe(ctx context.Context, endpoint string, status int, start time.Time, h http.Header, err error) {
	if c.opts.Limiter != nil {
		c.opts.Limiter.Observe(endpoint, status, h)
	}
	if c.opts.OnRequest != nil {
		c.opts.OnRequest(RequestInfo{Context: ctx, Endpoint: endpoint, Status: status, Duration: time.Since(start), Err: err})
	}
}

// header returns a request's headers: a copy of those built once in New,
// cheaper than setting (canonicalising, allocating) each on every request.
func (c *Client) header(backofficeCall, hasBody bool) http.Header {
	h := c.headers[0]
	if backofficeCall {
		h = c.headers[1]
	}
	h = h.Clone()
	if hasBody {
		h["Content-Type"] = []string{"application/json"}
	}
	return h
}

func (c *Client) authorize(h http.Header, backofficeCall bool) {
	if backofficeCall {
		if c.opts.BackofficeAuth == BackofficeBearer {
			h.Set("Authorization", "Bearer "+c.opts.BackofficeToken)
		} else {
			h.Set("access_token", c.opts.BackofficeToken)
		}
		return
	}
	if c.opts.Auth == AuthBearer || c.opts.Auth == AuthBoth {
		h.Set("Authorization", "Bearer "+c.opts.APIKey)
	}
	if c.opts.Auth == AuthAPIKey || c.opts.Auth == AuthBoth {
		h.Set("api_key", c.opts.APIKey)
	}
}

// throttleWait is how long to pause after a 429: Retry-After (seconds or an
// HTTP date), else X-RateLimit-Reset (Unix seconds, or seconds from now when
// small), else the configured pause plus up to a tenth of jitter.
func (c *Client) throttleWait(h http.Header, now time.Time) time.Duration {
	if d, ok := RetryAfter(h, now); ok {
		return d
	}
	return c.opts.ThrottleWait + rand.N(c.opts.ThrottleWait/10+1)
}

// RetryAfter reads the server's wait hint from Retry-After, then
// X-RateLimit-Reset. ok is false when neither is usable.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return time.Duration(secs * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
			// Epoch seconds are above 1e9; a small number is a delay.
			if n > 1e9 {
				return max(time.Unix(int64(n), 0).Sub(now)+time.Second, time.Second), true
			}
			return time.Duration(n * float64(time.Second)), true
		}
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
