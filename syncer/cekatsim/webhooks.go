package cekatsim

// Webhooks, read from the field notes ("Webhooks"): when Options.WebhookURL is
// set, the simulator POSTs an event there for each of these changes:
//
//   - message.received: an inbound message was appended (live traffic:
//     AddMessages, LiveRate, AddConversation's first message);
//   - message.sent: an outbound message was appended (live traffic or a send
//     through POST /messages/whatsapp);
//   - message.delivered, message.read: a message's status changed as the
//     simulated clock advanced (Advance), outbound (delivered, read) and
//     inbound (read, when an agent opens it); failures send nothing;
//   - conversation.created: a conversation started at run time
//     (AddConversation, LiveNewConversationRate, a send to a new number),
//     followed, for one conversation in four, by a ticket.created that a
//     receiver is to ignore;
//   - conversation.resolved: a conversation became resolved as the clock
//     advanced (see conversations.go for stages).
//
// Status and resolution events are scheduled when a message is appended (and,
// at New, for the generated history of the 4 days before the clock starts):
// the simulator's statuses all change within 3 days 13 hours of a message,
// so no change is missed, and Advance costs only the events it fires. Events
// are produced in simulated time order by each Advance; their time stamp is
// the simulated time of the change.
//
// Bodies (Options.WebhookShape):
//
//	documented: {"event":"message.received","timestamp":"2025-03-28T10:00:00Z","data":{...}}
//	envelope:   {"id":"evt_<16 hex>","object":"event","timestamp":1743156000,"event_name":"message.received","data":{...}}
//
// data, by event (every time stamp in data like 2026-04-10T09:24:23.237+00:00):
//
//	message.received, message.sent: id (message id), from, to (phone numbers
//	  with +: the customer's and the inbox's), body (text or caption, may be
//	  ""), type, channel (the conversation's platform_type), media_url (media)
//	message.delivered, message.read: id, status (delivered or read), from,
//	  to, channel
//	conversation.created: id (conversation id), contact_id, contact_name,
//	  contact_phone (digits), inbox_id, channel, created_at
//	conversation.resolved: id, resolved_at, resolved_by_id,
//	  resolved_by_name, channel
//	ticket.created: id (tkt_...), subject, status
//
// and, with Options.WebhookConversationID, conversation_id in every data.
// Without it a message event names no conversation: the receiver has to
// fetch the message (GET /messages/{id}) to learn it.
//
// Signature: HMAC-SHA256 of the raw body with Options.WebhookSecret, in the
// header Options.WebhookSignatureHeader, encoded per
// Options.WebhookSignatureEncoding (see WebhookSignature).
//
// Delivery is asynchronous: a queue and one sender goroutine, in the order
// events were produced unless faults say otherwise. A copy answered other
// than 2xx (or not at all within 10 s) is tried again Options.WebhookRetries
// times, after WebhookRetryBackoff, doubling; retries do not hold the queue
// up. Faults, drawn from the seed in the order events are sent:
// WebhookLoss drops an event; WebhookDuplicate sends it twice;
// WebhookReorder holds it back until the next event has been sent (if none
// follows within 200 ms it goes alone); WebhookDelay delays each copy by a
// random time up to it (so delayed copies may overtake each other);
// WebhookBadSignature signs a copy with the wrong key (a well-formed but
// wrong signature). WebhookCounts counts all of it; WebhooksIdle waits for
// the queue to drain; Close stops the sender.

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WebhookShape selects the body of webhook events.
type WebhookShape string

const (
	WebhookDocumented WebhookShape = "documented" // {event, timestamp (RFC3339), data}
	WebhookEnvelope   WebhookShape = "envelope"   // {id, object, timestamp (Unix seconds), event_name, data}
)

// SignatureEncoding selects how the HMAC-SHA256 of a webhook body is written.
type SignatureEncoding string

const (
	SignatureHex          SignatureEncoding = "hex"           // lowercase hex (default)
	SignatureBase64       SignatureEncoding = "base64"        // standard base64, padded
	SignatureSHA256Hex    SignatureEncoding = "sha256=hex"    // "sha256=" + hex
	SignatureSHA256Base64 SignatureEncoding = "sha256=base64" // "sha256=" + base64
)

// Webhook defaults.
const (
	DefaultWebhookSecret          = "sim-webhook-secret"
	DefaultWebhookSignatureHeader = "X-Cekat-Signature"
	DefaultWebhookRetries         = 3
	DefaultWebhookRetryBackoff    = 100 * time.Millisecond
)

// Webhook event names.
const (
	EventMessageReceived      = "message.received"
	EventMessageSent          = "message.sent"
	EventMessageDelivered     = "message.delivered"
	EventMessageRead          = "message.read"
	EventConversationCreated  = "conversation.created"
	EventConversationResolved = "conversation.resolved"
	EventTicketCreated        = "ticket.created"
)

const (
	statusHorizon = 4 * 24 * time.Hour // every status change happens within this of its message
	reorderHold   = 200 * time.Millisecond
	hookTimeout   = 10 * time.Second
)

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// WebhookSignature is the signature the simulator sends for body: the
// HMAC-SHA256 of the raw body keyed with secret, in the given encoding.
func WebhookSignature(secret string, body []byte, enc SignatureEncoding) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sum := mac.Sum(nil)
	var out string
	switch enc {
	case SignatureBase64, SignatureSHA256Base64:
		out = base64.StdEncoding.EncodeToString(sum)
	default:
		out = hex.EncodeToString(sum)
	}
	if strings.HasPrefix(string(enc), "sha256=") {
		out = "sha256=" + out
	}
	return out
}

// WebhookCounts count webhook events and deliveries since New. Once idle,
// Events - Lost + Duplicated = Delivered + Failed + Abandoned: every copy
// sent ends delivered (a 2xx), failed (after its retries) or abandoned (by
// Close).
type WebhookCounts struct {
	Events       int            `json:"events"`        // produced
	ByEvent      map[string]int `json:"by_event"`      // produced, by event name
	Lost         int            `json:"lost"`          // events dropped (WebhookLoss)
	Duplicated   int            `json:"duplicated"`    // events sent twice (WebhookDuplicate)
	Reordered    int            `json:"reordered"`     // events sent after the one that followed them (WebhookReorder)
	Delayed      int            `json:"delayed"`       // copies delayed (WebhookDelay)
	BadSignature int            `json:"bad_signature"` // copies signed with a wrong key (WebhookBadSignature)
	Attempts     int            `json:"attempts"`      // HTTP requests, retries included
	Retries      int            `json:"retries"`       // attempts after a failed one
	Delivered    int            `json:"delivered"`     // copies answered 2xx
	Failed       int            `json:"failed"`        // copies given up after their retries
	Abandoned    int            `json:"abandoned"`     // copies dropped by Close
	Pending      int            `json:"pending"`       // copies queued, held, delayed or in flight
}

func (o *Options) normalizeWebhooks() error {
	if o.WebhookURL != "" && !validURL(o.WebhookURL) {
		return errorf("WebhookURL must be an http(s) URL, got %q", o.WebhookURL)
	}
	if o.WebhookSecret == "" {
		o.WebhookSecret = DefaultWebhookSecret
	}
	if o.WebhookSignatureHeader == "" {
		o.WebhookSignatureHeader = DefaultWebhookSignatureHeader
	}
	switch o.WebhookSignatureEncoding {
	case "":
		o.WebhookSignatureEncoding = SignatureHex
	case SignatureHex, SignatureBase64, SignatureSHA256Hex, SignatureSHA256Base64:
	default:
		return errorf("unknown webhook signature encoding %q (want hex, base64, sha256=hex or sha256=base64)", o.WebhookSignatureEncoding)
	}
	switch o.WebhookShape {
	case "":
		o.WebhookShape = WebhookDocumented
	case WebhookDocumented, WebhookEnvelope:
	default:
		return errorf("unknown webhook shape %q (want documented or envelope)", o.WebhookShape)
	}
	switch {
	case o.WebhookRetries == 0:
		o.WebhookRetries = DefaultWebhookRetries
	case o.WebhookRetries < 0:
		o.WebhookRetries = 0
	}
	if o.WebhookRetryBackoff == 0 {
		o.WebhookRetryBackoff = DefaultWebhookRetryBackoff
	}
	if o.WebhookRetryBackoff < 0 || o.WebhookDelay < 0 {
		return errorf("WebhookRetryBackoff and WebhookDelay must not be negative")
	}
	for name, p := range map[string]float64{
		"WebhookLoss": o.WebhookLoss, "WebhookDuplicate": o.WebhookDuplicate,
		"WebhookReorder": o.WebhookReorder, "WebhookBadSignature": o.WebhookBadSignature,
	} {
		if p < 0 || p > 1 || p != p {
			return errorf("%s must be within [0, 1], got %v", name, p)
		}
	}
	return nil
}

// Producing events: everything below until the sender runs with Server.mu
// held (or inside New).

const (
	schedDelivered uint8 = iota
	schedRead
	schedResolved
)

// scheduled is a future change that fires an event when the clock reaches it.
type scheduled struct {
	at      time.Time
	seq     uint64 // order of scheduling, for ties
	kind    uint8
	inbound bool
	c       *convo
	pos     int
}

type schedule []scheduled

func (h schedule) Len() int { return len(h) }
func (h schedule) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h schedule) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *schedule) Push(x any)   { *h = append(*h, x.(scheduled)) }
func (h *schedule) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *Server) scheduleLocked(e scheduled) {
	if !e.at.After(s.clock) {
		return
	}
	s.hooks.schedSeq++
	e.seq = s.hooks.schedSeq
	heap.Push(&s.hooks.sched, e)
}

// scheduleStatusLocked schedules the status changes of m, materialized with
// every status time set (now = farFuture).
func (s *Server) scheduleStatusLocked(m *msg) {
	if m.deliveredAt != nil {
		s.scheduleLocked(scheduled{at: *m.deliveredAt, kind: schedDelivered, inbound: m.inbound(), c: m.c, pos: m.pos})
	}
	if m.readAt != nil {
		s.scheduleLocked(scheduled{at: *m.readAt, kind: schedRead, inbound: m.inbound(), c: m.c, pos: m.pos})
	}
}

func (s *Server) scheduleResolutionLocked(c *convo, lastPos int, lastAt time.Time) {
	if at, ok := s.resolution(c, lastPos, lastAt); ok {
		s.scheduleLocked(scheduled{at: at, kind: schedResolved, c: c, pos: lastPos})
	}
}

// firstSince is the first generated position of c sent at or after the Unix
// second thr (c.gen when none is).
func (s *Server) firstSince(c *convo, thr int64) int {
	b := len(c.blocks) - 1
	for b > 0 && c.startSec+c.blocks[b] >= thr {
		b--
	}
	pos, off := b*64, c.blocks[b]
	for pos < c.gen-1 && c.startSec+off < thr {
		pos++
		off += s.gap(c, pos)
	}
	if c.startSec+off < thr {
		return c.gen
	}
	return pos
}

// startWebhooks builds the sender and schedules the changes to come of the
// generated history; called by New.
func (s *Server) startWebhooks() {
	ctx, cancel := context.WithCancel(context.Background())
	w := &webhooks{
		opts: &s.opts,
		// A signed body goes to the configured receiver only: a redirect
		// is its answer, not a new address.
		client: &http.Client{Timeout: hookTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		ctx:        ctx,
		cancel:     cancel,
		idle:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
		timers:     map[*int]*time.Timer{},
		rng:        rand.New(rand.NewPCG(uint64(s.opts.Seed), 0x3eb0_0c5)),
		workerDone: make(chan struct{}),
		counts:     WebhookCounts{ByEvent: map[string]int{}},
	}
	close(w.idle)
	s.hooks = w
	thr := s.clock.Add(-statusHorizon).Unix()
	for _, c := range s.convs {
		if c.gen == 0 {
			continue
		}
		v := view{c: c, n: c.gen, now: farFuture}
		_ = s.each(v, s.firstSince(c, thr), c.gen, func(m *msg) error {
			s.scheduleStatusLocked(m)
			return nil
		})
		s.scheduleResolutionLocked(c, c.gen-1, c.meta.genLast)
	}
	go w.run()
}

// appendedLocked produces the events of a message just appended at pos.
func (s *Server) appendedLocked(c *convo, pos int) {
	if s.hooks == nil || s.hooks.stopped.Load() {
		return
	}
	ex := &c.extras[pos-c.gen]
	m := s.message(c, pos, time.Unix(ex.sec, 0).UTC(), ex, farFuture)
	name, from, to := EventMessageReceived, c.phone, c.inbox.phone
	if !m.inbound() {
		name, from, to = EventMessageSent, c.inbox.phone, c.phone
	}
	data := map[string]any{"id": m.id, "from": from, "to": to, "body": realMessage(m), "type": m.typ, "channel": s.platform(c, c.extras)}
	if m.url != "" {
		data["media_url"] = m.url
	}
	s.emitLocked(name, m.ts, c, data)
	s.scheduleStatusLocked(m)
	s.scheduleResolutionLocked(c, pos, m.ts)
}

// conversationCreatedLocked produces conversation.created (and sometimes
// ticket.created) for a conversation registered at run time.
func (s *Server) conversationCreatedLocked(c *convo) {
	channel := s.platform(c, c.extras)
	s.emitLocked(EventConversationCreated, c.meta.created, c, map[string]any{
		"id": c.id, "contact_id": c.contactID, "contact_name": c.custName, "contact_phone": strings.TrimPrefix(c.phone, "+"),
		"inbox_id": s.shapeID(c.inbox.docID, c.inbox.realID), "channel": channel, "created_at": formatConvTime(c.meta.created),
	})
	if h := s.hash3(c.idx, -5, saltTicket); h%4 == 0 {
		s.emitLocked(EventTicketCreated, c.meta.created, c, map[string]any{
			"id": "tkt_" + hexN(mix(h), 10), "subject": "Percakapan baru dari " + c.custName, "status": "open",
		})
	}
}

// clockMovedLocked fires the scheduled changes the clock has reached, in
// time order.
func (s *Server) clockMovedLocked() {
	if s.hooks == nil || s.hooks.stopped.Load() {
		return
	}
	h := &s.hooks.sched
	for h.Len() > 0 && !(*h)[0].at.After(s.clock) {
		e := heap.Pop(h).(scheduled)
		c := e.c
		if c.deleted {
			continue
		}
		channel := s.platform(c, c.extras)
		switch e.kind {
		case schedDelivered, schedRead:
			name, status := EventMessageDelivered, "delivered"
			if e.kind == schedRead {
				name, status = EventMessageRead, "read"
			}
			from, to := c.inbox.phone, c.phone
			if e.inbound {
				from, to = c.phone, c.inbox.phone
			}
			s.emitLocked(name, e.at, c, map[string]any{"id": s.messageID(c.idx, e.pos), "status": status, "from": from, "to": to, "channel": channel})
		case schedResolved:
			if c.gen+len(c.extras)-1 != e.pos { // reopened by a newer message since
				continue
			}
			a := s.agents[c.agent]
			s.emitLocked(EventConversationResolved, e.at, c, map[string]any{
				"id": c.id, "resolved_at": formatConvTime(e.at), "resolved_by_id": s.shapeID(a.docID, a.realID),
				"resolved_by_name": a.name, "channel": channel,
			})
		}
	}
}

// emitLocked renders an event and hands it to the sender.
func (s *Server) emitLocked(name string, at time.Time, c *convo, data map[string]any) {
	w := s.hooks
	if s.opts.WebhookConversationID {
		data["conversation_id"] = c.id
	}
	w.evSeq++
	var v any
	if s.opts.WebhookShape == WebhookEnvelope {
		v = struct {
			ID        string         `json:"id"`
			Object    string         `json:"object"`
			Timestamp int64          `json:"timestamp"`
			EventName string         `json:"event_name"`
			Data      map[string]any `json:"data"`
		}{"evt_" + hexN(mix(s.seed^w.evSeq*0x9e3779b97f4a7c15), 16), "event", at.Unix(), name, data}
	} else {
		v = struct {
			Event     string         `json:"event"`
			Timestamp string         `json:"timestamp"`
			Data      map[string]any `json:"data"`
		}{name, at.UTC().Format("2006-01-02T15:04:05Z"), data}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return // maps of strings always encode
	}
	w.enqueue(&hookEvent{name: name, body: bytes.TrimSuffix(buf.Bytes(), []byte("\n"))})
}

// Sending.

type hookEvent struct {
	name string
	body []byte
}

type webhooks struct {
	// producer side, guarded by Server.mu
	sched    schedule
	schedSeq uint64
	evSeq    uint64

	opts       *Options
	client     *http.Client
	ctx        context.Context
	cancel     context.CancelFunc
	workerDone chan struct{}
	inflight   sync.WaitGroup // attempts started by timers
	stopped    atomic.Bool    // Close was called: produce nothing more

	mu     sync.Mutex
	queue  []*hookEvent
	held   *hookEvent // held back by WebhookReorder
	busy   int        // copies queued, held, waiting on a timer or in flight
	idle   chan struct{}
	wake   chan struct{}
	timers map[*int]*time.Timer
	closed bool
	counts WebhookCounts
	rng    *rand.Rand
}

// busyLocked moves the number of copies in hand by d; w.mu is held.
func (w *webhooks) busyLocked(d int) {
	was := w.busy
	w.busy += d
	switch {
	case was == 0 && w.busy > 0:
		w.idle = make(chan struct{})
	case was > 0 && w.busy == 0:
		close(w.idle)
	}
}

func (w *webhooks) drawLocked(p float64) bool { return p > 0 && w.rng.Float64() < p }

func (w *webhooks) enqueue(ev *hookEvent) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.counts.Events++
	w.counts.ByEvent[ev.name]++
	w.queue = append(w.queue, ev)
	w.busyLocked(1)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *webhooks) run() {
	defer close(w.workerDone)
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		if len(w.queue) == 0 {
			held := w.held
			w.mu.Unlock()
			if !w.wait(held) {
				return
			}
			continue
		}
		ev := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		if w.drawLocked(w.opts.WebhookLoss) {
			w.counts.Lost++
			w.busyLocked(-1)
			w.mu.Unlock()
			continue
		}
		held := w.held
		if held == nil && w.drawLocked(w.opts.WebhookReorder) {
			w.held = ev
			w.mu.Unlock()
			continue
		}
		w.held = nil
		if held != nil {
			w.counts.Reordered++
		}
		w.mu.Unlock()
		w.dispatch(ev)
		if held != nil {
			w.dispatch(held)
		}
	}
}

// wait waits for an event to be queued; an event held back is sent alone when
// none comes within reorderHold. It reports false when the sender stops.
func (w *webhooks) wait(held *hookEvent) bool {
	var release <-chan time.Time
	if held != nil {
		t := time.NewTimer(reorderHold)
		defer t.Stop()
		release = t.C
	}
	select {
	case <-w.wake:
	case <-w.ctx.Done():
		return false
	case <-release:
		w.mu.Lock()
		if w.held != held || len(w.queue) > 0 {
			held = nil
		} else {
			w.held = nil
		}
		w.mu.Unlock()
		if held != nil {
			w.dispatch(held)
		}
	}
	return true
}

// dispatch sends the copies of one event (two when duplicated).
func (w *webhooks) dispatch(ev *hookEvent) {
	type plan struct {
		bad   bool
		delay time.Duration
	}
	w.mu.Lock()
	copies := 1
	if w.drawLocked(w.opts.WebhookDuplicate) {
		copies = 2
		w.counts.Duplicated++
		w.busyLocked(1)
	}
	plans := make([]plan, copies)
	for i := range plans {
		plans[i].bad = w.drawLocked(w.opts.WebhookBadSignature)
		if w.opts.WebhookDelay > 0 {
			plans[i].delay = time.Duration(w.rng.Float64() * float64(w.opts.WebhookDelay))
		}
	}
	w.mu.Unlock()
	for _, p := range plans {
		secret := w.opts.WebhookSecret
		if p.bad {
			secret += "-wrong"
		}
		sig := WebhookSignature(secret, ev.body, w.opts.WebhookSignatureEncoding)
		w.mu.Lock()
		if p.bad {
			w.counts.BadSignature++
		}
		if p.delay > 0 {
			w.counts.Delayed++
			w.afterLocked(p.delay, func() { w.attempt(ev, sig, 0) })
			w.mu.Unlock()
			continue
		}
		w.mu.Unlock()
		w.attempt(ev, sig, 0)
	}
}

// afterLocked runs fn after d unless Close comes first; w.mu is held.
func (w *webhooks) afterLocked(d time.Duration, fn func()) {
	if w.closed {
		w.counts.Abandoned++
		w.busyLocked(-1)
		return
	}
	tok := new(int)
	w.timers[tok] = time.AfterFunc(d, func() {
		w.mu.Lock()
		if _, ok := w.timers[tok]; !ok { // Close counted it
			w.mu.Unlock()
			return
		}
		delete(w.timers, tok)
		w.inflight.Add(1)
		w.mu.Unlock()
		defer w.inflight.Done()
		fn()
	})
}

// attempt sends one copy; n is the number of attempts before it.
func (w *webhooks) attempt(ev *hookEvent, sig string, n int) {
	ok := false
	if w.ctx.Err() == nil {
		req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.opts.WebhookURL, bytes.NewReader(ev.body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "cekat-sim-webhooks")
			req.Header.Set(w.opts.WebhookSignatureHeader, sig)
			var resp *http.Response
			if resp, err = w.client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
				_ = resp.Body.Close()
				ok = resp.StatusCode >= 200 && resp.StatusCode < 300
			}
		}
		w.mu.Lock()
		w.counts.Attempts++
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case ok:
		w.counts.Delivered++
	case w.ctx.Err() != nil:
		w.counts.Abandoned++
	case n < w.opts.WebhookRetries:
		w.counts.Retries++
		w.afterLocked(w.opts.WebhookRetryBackoff<<n, func() { w.attempt(ev, sig, n+1) })
		return
	default:
		w.counts.Failed++
	}
	w.busyLocked(-1)
}

// WebhookCounts returns the webhook counts (zero without Options.WebhookURL).
func (s *Server) WebhookCounts() WebhookCounts {
	w := s.hooks
	if w == nil {
		return WebhookCounts{ByEvent: map[string]int{}}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.counts
	c.ByEvent = make(map[string]int, len(w.counts.ByEvent))
	for k, v := range w.counts.ByEvent {
		c.ByEvent[k] = v
	}
	c.Pending = w.busy
	return c
}

// WebhooksIdle waits until every webhook event produced so far has been
// delivered, has failed, or was lost: nothing queued, held, delayed, waiting
// for a retry or in flight. Events are produced synchronously (by
// AddMessages, Advance, AddConversation, sends...), so a test can change
// things, wait here and then look at what its receiver got.
func (s *Server) WebhooksIdle(ctx context.Context) error {
	w := s.hooks
	if w == nil {
		return nil
	}
	for {
		w.mu.Lock()
		if w.busy == 0 {
			w.mu.Unlock()
			return nil
		}
		ch := w.idle
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the webhook sender: copies not yet delivered are abandoned
// (counted) and no event is produced afterwards. The API handlers keep
// working. Close is safe to call more than once, and without webhooks.
func (s *Server) Close() error {
	w := s.hooks
	if w == nil {
		return nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.stopped.Store(true)
	for tok, t := range w.timers {
		t.Stop()
		delete(w.timers, tok)
		w.counts.Abandoned++
		w.busyLocked(-1)
	}
	n := len(w.queue)
	if w.held != nil {
		n++
		w.held = nil
	}
	w.queue = nil
	w.counts.Abandoned += n
	w.busyLocked(-n)
	w.mu.Unlock()
	w.cancel()
	<-w.workerDone
	w.inflight.Wait()
	return nil
}
