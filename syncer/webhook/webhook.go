// Package webhook receives Cekat's webhook events. It checks each body's
// signature (HMAC-SHA256 with the webhook secret), refuses events out of
// their time window, answers a delivery again of a stored event 200 without
// storing it again, stores a new event (in ClickHouse, else in the local
// journal) before it answers 202, and tells the archiver there is work.
// Events are hints: the archive is still written only from the API.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// Store keeps accepted events; an event is answered 202 only once stored.
type Store interface {
	SaveWebhookEvents(ctx context.Context, events ...sink.WebhookEvent) error
	// SeenWebhookEvents returns, of ids, the events already stored.
	SeenWebhookEvents(ctx context.Context, ids ...string) (map[string]bool, error)
}

// Encodings of the signature header's value.
const (
	EncodingHex    = "hex"
	EncodingBase64 = "base64"
)

// DefaultSignatureHeader is where the signature is read unless configured.
const DefaultSignatureHeader = "X-Cekat-Signature"

// Options configure a Receiver.
type Options struct {
	Secret          []byte
	SignatureHeader string // DefaultSignatureHeader
	// Encoding of the HMAC in the header: hex (default) or base64; either
	// may come with a "sha256=" prefix.
	Encoding string
	MaxBody  int64 // bytes (1 MiB)
	// MaxAge refuses events whose timestamp is older (0: no limit); events
	// more than MaxAhead ahead of the clock (5 minutes) are refused too.
	// Events without a timestamp are taken.
	MaxAge   time.Duration
	MaxAhead time.Duration
	// MaxInFlight bounds the requests handled at once (32); more are
	// answered 503 at once: each may hold MaxBody bytes.
	MaxInFlight int
	Store       Store
	// Journal, when set, keeps the events ClickHouse could not store; they
	// are answered 202 all the same. Without it they are answered 500.
	Journal *Journal
	// Notify is called after events are stored, to start work on them.
	Notify     func()
	Registerer prometheus.Registerer
	Logger     *zap.Logger
	Now        func() time.Time
}

// Receiver is the webhook endpoint, an http.Handler.
type Receiver struct {
	opts   Options
	events *prometheus.CounterVec
	// rejectLog logs the first rejected signature of each minute: a
	// misconfigured secret (or a scan) must show in the log without
	// flooding it. unlogged counts the rejections it left out since.
	rejectLog *zap.Logger
	unlogged  atomic.Int64
	slots     chan struct{}
	mu        sync.Mutex
	taking    map[string]bool // events being stored now
}

// Known events; others are stored, counted as "other" and ignored.
var knownEvents = map[string]bool{
	"message.received": true, "message.sent": true, "message.delivered": true, "message.read": true,
	"message.failed": true, "conversation.created": true, "conversation.resolved": true,
}

// New checks the options.
func New(opts Options) (*Receiver, error) {
	if len(opts.Secret) == 0 {
		return nil, errors.New("webhook: the secret is empty")
	}
	if opts.Store == nil {
		return nil, errors.New("webhook: no store")
	}
	if opts.SignatureHeader == "" {
		opts.SignatureHeader = DefaultSignatureHeader
	}
	switch opts.Encoding {
	case "":
		opts.Encoding = EncodingHex
	case EncodingHex, EncodingBase64:
	default:
		return nil, fmt.Errorf("webhook: unknown signature encoding %q (want hex or base64)", opts.Encoding)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.MaxAhead <= 0 {
		opts.MaxAhead = 5 * time.Minute
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 32
	}
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Receiver{opts: opts, slots: make(chan struct{}, opts.MaxInFlight), taking: map[string]bool{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "cekat_archiver",
			Name: "webhook_requests_total",
			Help: "Webhook requests by event (the known ones, else other) and result: accepted (stored in ClickHouse), journaled " +
				"(kept on local disk while ClickHouse is away), duplicate (stored before: answered 200, not stored again), " +
				"stale (timestamp outside webhook.max_event_age), unsigned (bad or missing signature), invalid, too_large, " +
				"busy (webhook.max_in_flight requests already in hand: 503), failed (not stored)."},
			[]string{"event", "result"})}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.events)
	}
	r.rejectLog = opts.Logger.WithOptions(zap.WithClock(clock(opts.Now)), zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Minute, 1, 0)
	}))
	return r, nil
}

// rejected logs a request whose signature is bad or missing, at most once
// a minute, with the count of those not logged since the last line.
func (r *Receiver) rejected(req *http.Request, header string) {
	ce := r.rejectLog.Check(zap.WarnLevel, "webhook request rejected (HTTP 401): bad or missing signature; is webhook.secret the one the Cekat dashboard signs with?")
	if ce == nil {
		r.unlogged.Add(1)
		return
	}
	reason := "signature does not match the body"
	if strings.TrimSpace(header) == "" {
		reason = "no signature header"
	}
	ce.Write(zap.String("reason", reason), zap.String("header", r.opts.SignatureHeader), zap.String("encoding", r.opts.Encoding),
		zap.String("remote_addr", req.RemoteAddr), zap.String("user_agent", req.UserAgent()),
		zap.Int64("rejected_not_logged_before", r.unlogged.Swap(0)))
}

// clock makes the sampled logger's minutes those of Options.Now.
type clock func() time.Time

func (c clock) Now() time.Time                         { return c() }
func (c clock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func (r *Receiver) count(event, result string) {
	if !knownEvents[event] {
		event = "other"
	}
	r.events.WithLabelValues(event, result).Inc()
}

// ServeHTTP answers 202 once the event is stored, 200 for an event stored
// before; 401 for a bad or missing signature, 413 for a body over the
// limit, 400 for a body that is not an event or is out of its time window,
// 503 when too many requests are in hand, 500 when it cannot be stored
// (the sender retries).
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		r.count("", "busy")
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many requests in hand", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		r.count("", "too_large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	if sig := req.Header.Get(r.opts.SignatureHeader); !r.signed(body, sig) {
		r.count("", "unsigned")
		r.rejected(req, sig)
		http.Error(w, "bad or missing signature", http.StatusUnauthorized)
		return
	}
	ev, err := Parse(body)
	if err != nil {
		r.count("", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := r.opts.Now().UTC()
	if !ev.Time.IsZero() && (r.opts.MaxAge > 0 && now.Sub(ev.Time) > r.opts.MaxAge || ev.Time.Sub(now) > r.opts.MaxAhead) {
		r.count(ev.Name, "stale")
		http.Error(w, fmt.Sprintf("event time %s is outside the accepted window (%s before, %s after now)",
			ev.Time.Format(time.RFC3339), r.opts.MaxAge, r.opts.MaxAhead), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	if !r.take(ev.ID) {
		r.count(ev.Name, "duplicate")
		w.WriteHeader(http.StatusOK)
		return
	}
	defer r.done(ev.ID)
	if r.opts.Journal.Has(ev.ID) {
		r.count(ev.Name, "duplicate")
		w.WriteHeader(http.StatusOK)
		return
	}
	seen, err := r.opts.Store.SeenWebhookEvents(ctx, ev.ID)
	if err == nil && seen[ev.ID] {
		r.count(ev.Name, "duplicate")
		w.WriteHeader(http.StatusOK)
		return
	}
	// A new event's version is the lowest: a delivery again that slipped
	// past the check above never makes a processed event pending again.
	row := sink.WebhookEvent{EventID: ev.ID, ReceivedAt: now, Event: ev.Name, ConversationID: ev.ConversationID,
		MessageID: ev.MessageID, Raw: string(body), Version: 1}
	if err == nil {
		err = r.opts.Store.SaveWebhookEvents(ctx, row)
	}
	result := "accepted"
	if err != nil && r.opts.Journal != nil {
		if jerr := r.opts.Journal.Append(row); jerr == nil {
			result, err = "journaled", nil
		} else {
			err = errors.Join(err, jerr)
		}
	}
	if err != nil {
		r.count(ev.Name, "failed")
		r.opts.Logger.Warn("a webhook event could not be stored; the sender is told to retry", zap.String("event", ev.Name), zap.Error(err))
		http.Error(w, "cannot store the event now", http.StatusInternalServerError)
		return
	}
	r.count(ev.Name, result)
	w.WriteHeader(http.StatusAccepted)
	r.opts.Notify()
}

// take marks an event as being stored; false when it already is (the same
// event delivered twice at once).
func (r *Receiver) take(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.taking[id] {
		return false
	}
	r.taking[id] = true
	return true
}

func (r *Receiver) done(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.taking, id)
}

// signed checks the HMAC-SHA256 of the raw body against the header, in
// constant time.
func (r *Receiver) signed(body []byte, header string) bool {
	header = strings.TrimSpace(header)
	header = strings.TrimPrefix(header, "sha256=")
	if header == "" {
		return false
	}
	mac := hmac.New(sha256.New, r.opts.Secret)
	mac.Write(body)
	sum := mac.Sum(nil)
	var got []byte
	var err error
	if r.opts.Encoding == EncodingBase64 {
		got, err = base64.StdEncoding.DecodeString(header)
		if err != nil {
			got, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(header, "="))
		}
	} else {
		got, err = hex.DecodeString(strings.ToLower(header))
	}
	return err == nil && hmac.Equal(got, sum)
}

// Sign returns the signature of body as Encoding says, without prefix.
func Sign(secret, body []byte, encoding string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if encoding == EncodingBase64 {
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// Event is what the archiver reads of a webhook body.
type Event struct {
	ID             string // the envelope's id, else a hash of the body
	Name           string
	Time           time.Time // the envelope's timestamp; zero when absent or unreadable
	ConversationID string
	MessageID      string
}

// Parse reads an event in either shape seen: {"event", "timestamp", "data"}
// or {"id", "object", "timestamp", "event_name" | "event_type", "data"}.
func Parse(body []byte) (Event, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return Event{}, errors.New("the body is not a JSON object")
	}
	str := func(m map[string]json.RawMessage, key string) string {
		raw, ok := m[key]
		if !ok {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
		return ""
	}
	ev := Event{Name: str(env, "event")}
	for _, k := range []string{"event_name", "event_type", "type"} {
		if ev.Name == "" {
			ev.Name = str(env, k)
		}
	}
	if ev.Name == "" {
		return Event{}, errors.New("the body names no event")
	}
	var data map[string]json.RawMessage
	_ = json.Unmarshal(env["data"], &data)
	ev.ConversationID = str(data, "conversation_id")
	if strings.HasPrefix(ev.Name, "conversation.") {
		ev.ConversationID = firstNonEmpty(ev.ConversationID, str(data, "id"))
	} else {
		ev.MessageID = firstNonEmpty(str(data, "message_id"), str(data, "id"))
	}
	ev.Time = eventTime(env["timestamp"])
	ev.ID = str(env, "id")
	if ev.ID == "" {
		sum := sha256.Sum256(body)
		ev.ID = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return ev, nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// eventTime reads a timestamp as RFC 3339 text or Unix seconds (or
// milliseconds, when the number is too large for seconds).
func eventTime(raw json.RawMessage) time.Time {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC()
		}
		return time.Time{}
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return time.Time{}
	}
	v, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return time.Time{}
		}
		v = int64(f)
	}
	if v > 1e11 { // milliseconds
		return time.UnixMilli(v).UTC()
	}
	return time.Unix(v, 0).UTC()
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
