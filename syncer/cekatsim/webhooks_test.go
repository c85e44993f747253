package cekatsim

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookReq is one request the receiver got.
type hookReq struct {
	sig   string
	body  []byte
	valid bool // the signature verifies with the receiver's secret
}

// receiver is a webhook endpoint that verifies signatures on its own (not
// with WebhookSignature) and answers what answer says (200 by default).
type receiver struct {
	t      *testing.T
	secret string
	header string
	enc    SignatureEncoding
	answer func(req hookReq, nthOfBody int) int

	mu     sync.Mutex
	reqs   []hookReq
	bodies map[string]int
	srv    *httptest.Server
}

func verifySignature(secret string, body []byte, enc SignatureEncoding, got string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := mac.Sum(nil)
	rest, prefixed := strings.CutPrefix(got, "sha256=")
	if prefixed != strings.HasPrefix(string(enc), "sha256=") {
		return false
	}
	var raw []byte
	var err error
	if strings.HasSuffix(string(enc), "base64") {
		raw, err = base64.StdEncoding.DecodeString(rest)
	} else {
		if strings.ToLower(rest) != rest {
			return false
		}
		raw, err = hex.DecodeString(rest)
	}
	return err == nil && hmac.Equal(raw, want)
}

func newReceiver(t *testing.T, secret, header string, enc SignatureEncoding) *receiver {
	r := &receiver{t: t, secret: secret, header: header, enc: enc, bodies: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := hookReq{sig: req.Header.Get(r.header), body: body}
		h.valid = req.Method == http.MethodPost && req.Header.Get("Content-Type") == "application/json" && verifySignature(r.secret, body, r.enc, h.sig)
		r.mu.Lock()
		r.reqs = append(r.reqs, h)
		r.bodies[string(body)]++
		n := r.bodies[string(body)]
		answer := r.answer
		r.mu.Unlock()
		code := http.StatusOK
		if answer != nil {
			code = answer(h, n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []hookReq {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// hookEnv is a simulator sending webhooks to a receiver.
func hookEnv(t *testing.T, o Options) (*env, *receiver) {
	t.Helper()
	secret, header, enc := o.WebhookSecret, o.WebhookSignatureHeader, o.WebhookSignatureEncoding
	if secret == "" {
		secret = DefaultWebhookSecret
	}
	if header == "" {
		header = DefaultWebhookSignatureHeader
	}
	if enc == "" {
		enc = SignatureHex
	}
	r := newReceiver(t, secret, header, enc)
	o.WebhookURL = r.srv.URL + "/hooks/cekat"
	e := newEnv(t, o)
	t.Cleanup(func() { _ = e.sim.Close() })
	return e, r
}

func idle(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net, not an assertion on time
	defer cancel()
	if err := s.WebhooksIdle(ctx); err != nil {
		t.Fatalf("webhooks never idle: %v (%+v)", err, s.WebhookCounts())
	}
}

// event is a decoded webhook body of either shape.
type event struct {
	name string
	at   time.Time
	id   string // envelope only
	data map[string]any
}

func decodeEvent(t *testing.T, shape WebhookShape, body []byte) event {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("webhook body: %v: %s", err, body)
	}
	var ev event
	ev.data, _ = raw["data"].(map[string]any)
	if ev.data == nil {
		t.Fatalf("no data: %s", body)
	}
	if shape == WebhookEnvelope {
		if len(raw) != 5 || raw["object"] != "event" {
			t.Fatalf("envelope %s", body)
		}
		ev.name, _ = raw["event_name"].(string)
		ev.id, _ = raw["id"].(string)
		secs, ok := raw["timestamp"].(float64)
		if !ok || !regexp.MustCompile(`^evt_[0-9a-f]{16}$`).MatchString(ev.id) {
			t.Fatalf("envelope %s", body)
		}
		ev.at = time.Unix(int64(secs), 0).UTC()
		return ev
	}
	if len(raw) != 3 {
		t.Fatalf("documented body %s", body)
	}
	ev.name, _ = raw["event"].(string)
	ts, _ := raw["timestamp"].(string)
	at, err := time.Parse("2006-01-02T15:04:05Z", ts)
	if err != nil {
		t.Fatalf("timestamp %q: %v", ts, err)
	}
	ev.at = at
	return ev
}

func events(t *testing.T, shape WebhookShape, reqs []hookReq) []event {
	var out []event
	for _, r := range reqs {
		out = append(out, decodeEvent(t, shape, r.body))
	}
	return out
}

func hookShapes() []WebhookShape { return []WebhookShape{WebhookDocumented, WebhookEnvelope} }

// TestWebhookSignatures: every body is signed with the secret in the chosen
// encoding and header, and does not verify with another secret.
func TestWebhookSignatures(t *testing.T) {
	encs := []SignatureEncoding{SignatureHex, SignatureBase64, SignatureSHA256Hex, SignatureSHA256Base64}
	formats := map[SignatureEncoding]*regexp.Regexp{
		SignatureHex:          regexp.MustCompile(`^[0-9a-f]{64}$`),
		SignatureBase64:       regexp.MustCompile(`^[A-Za-z0-9+/]{43}=$`),
		SignatureSHA256Hex:    regexp.MustCompile(`^sha256=[0-9a-f]{64}$`),
		SignatureSHA256Base64: regexp.MustCompile(`^sha256=[A-Za-z0-9+/]{43}=$`),
	}
	for _, enc := range encs {
		for _, shape := range hookShapes() {
			t.Run(fmt.Sprintf("%s/%s", enc, shape), func(t *testing.T) {
				o := Options{Seed: 21, Conversations: 5, MeanMessages: 3, WebhookShape: shape, WebhookSignatureEncoding: enc}
				if shape == WebhookEnvelope {
					o.WebhookSecret, o.WebhookSignatureHeader = "s3cr3t ünï", "X-Webhook-Signature"
				}
				e, r := hookEnv(t, o)
				e.sim.AddMessages(e.sim.ConversationIDs()[1], 4)
				e.sim.AddConversation()
				idle(t, e.sim)
				got := r.got()
				c := e.sim.WebhookCounts()
				if len(got) < 6 || len(got) != c.Events || c.Delivered != c.Events || c.Attempts != c.Events {
					t.Fatalf("%d requests, counts %+v", len(got), c)
				}
				for _, h := range got {
					if !h.valid || !formats[enc].MatchString(h.sig) {
						t.Fatalf("signature %q of %s does not verify", h.sig, h.body)
					}
					if verifySignature(r.secret+"x", h.body, enc, h.sig) {
						t.Fatal("the signature verifies with another secret")
					}
					if h.sig != WebhookSignature(r.secret, h.body, enc) {
						t.Fatal("WebhookSignature disagrees with what was sent")
					}
					decodeEvent(t, shape, h.body)
				}
			})
		}
	}
}

// TestWebhookMessageEvents: live messages (generated and sent through the
// API) arrive as message.received and message.sent, in order, with their
// ids, parties and text, and conversation_id only when configured.
func TestWebhookMessageEvents(t *testing.T) {
	for _, withConv := range []bool{false, true} {
		for _, shape := range shapes {
			t.Run(fmt.Sprintf("conversation_id=%v/%s", withConv, shape), func(t *testing.T) {
				e, r := hookEnv(t, Options{Seed: 22, Conversations: 6, MeanMessages: 4, Shape: shape, WebhookConversationID: withConv})
				conv := e.sim.ConversationIDs()[2]
				e.sim.AddMessages(conv, 25)
				idle(t, e.sim)
				var msgs []TruthMessage
				for _, m := range e.sim.Truth() {
					if m.ConversationID == conv {
						msgs = append(msgs, m)
					}
				}
				msgs = msgs[len(msgs)-25:]
				evs := events(t, WebhookDocumented, r.got())
				if len(evs) != 25 {
					t.Fatalf("%d events for 25 messages", len(evs))
				}
				phone := ""
				for _, c := range e.sim.ConversationTruth() {
					if c.ID == conv {
						phone = "+" + c.ContactPhone
					}
				}
				e.sim.mu.RLock()
				inboxPhone := e.sim.byID[conv].inbox.phone
				e.sim.mu.RUnlock()
				if !e164Re.MatchString(inboxPhone) || !e164Re.MatchString(phone) {
					t.Fatalf("phones %q, %q", inboxPhone, phone)
				}
				directions := map[string]int{}
				for i, ev := range evs {
					m := msgs[i]
					want, from, to := EventMessageReceived, phone, inboxPhone
					if m.Direction == "outbound" {
						want, from, to = EventMessageSent, inboxPhone, phone
					}
					directions[ev.name]++
					if ev.name != want || ev.data["id"] != m.ID || ev.data["from"] != from || ev.data["to"] != to ||
						ev.data["body"] != truthText(m) || ev.data["type"] != m.Type || !ev.at.Equal(m.Timestamp) {
						t.Fatalf("event %d %s %v at %v; message %+v", i, ev.name, ev.data, ev.at, m)
					}
					if cid, ok := ev.data["conversation_id"]; ok != withConv || (ok && cid != conv) {
						t.Fatalf("conversation_id %v (configured: %v)", cid, withConv)
					}
					if !slices.Contains([]any{"whatsapp", "livechat", "messenger", "instagram"}, ev.data["channel"]) {
						t.Fatalf("channel %v", ev.data["channel"])
					}
				}
				if directions[EventMessageReceived] == 0 || directions[EventMessageSent] == 0 {
					t.Fatalf("directions %v", directions)
				}

				// a send to a new number starts a conversation
				mark := len(r.got())
				var send map[string]any
				if shape == ShapeReal {
					send = map[string]any{"conversation_id": conv, "receiver": phone, "message": "Pesanan dikirim"}
				} else {
					send = map[string]any{"inbox_id": e.sim.inboxes[1].docID, "to": "+628999000111", "type": "text", "content": map[string]string{"text": "Pesanan dikirim"}}
				}
				body, _ := json.Marshal(send)
				a := e.post("/messages/whatsapp", string(body))
				if a.status != 200 {
					t.Fatalf("send: %d %s", a.status, a.body)
				}
				sent := a.json(t)["data"].(map[string]any)["message_id"]
				idle(t, e.sim)
				evs = events(t, WebhookDocumented, r.got()[mark:])
				last := evs[len(evs)-1]
				if last.name != EventMessageSent || last.data["id"] != sent || last.data["body"] != "Pesanan dikirim" {
					t.Fatalf("after a send: %+v", evs)
				}
				if shape == ShapeDocumented {
					if evs[0].name != EventConversationCreated || evs[0].data["contact_phone"] != "628999000111" || evs[0].data["channel"] != "whatsapp" {
						t.Fatalf("a send to a new number: %+v", evs)
					}
					if !slices.Contains(e.sim.ConversationIDs(), evs[0].data["id"].(string)) {
						t.Fatalf("conversation.created names %v", evs[0].data["id"])
					}
				} else if len(evs) != 1 {
					t.Fatalf("a send in a known conversation: %+v", evs)
				}
			})
		}
	}
}

// TestWebhookStatusEvents: as the clock advances, message.delivered and
// message.read arrive for exactly the messages whose status changed in
// between, at the time of the change, in time order.
func TestWebhookStatusEvents(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e, r := hookEnv(t, Options{Seed: 23, Conversations: 40, MeanMessages: 30, Shape: shape, WebhookShape: WebhookEnvelope})
			ids := e.sim.ConversationIDs()
			total := map[string]int{}
			for step, d := range []time.Duration{10 * time.Second, 2 * time.Minute, 15 * time.Minute, 2 * time.Hour, 9 * time.Hour, 24 * time.Hour, 72 * time.Hour, 120 * time.Hour} {
				for i := range 4 {
					e.sim.AddMessages(ids[(step*4+i)%len(ids)], 3)
				}
				if step == 3 { // a deleted conversation says nothing more
					e.deleteConvs(e.backofficeHeader(), ids[1], ids[5])
				}
				idle(t, e.sim)
				mark := len(r.got())
				t0 := e.sim.Now()
				e.sim.Advance(d)
				t1 := e.sim.Now()
				idle(t, e.sim)
				var want, got []string
				for _, m := range e.sim.Truth() {
					if m.DeliveredAt != nil && m.DeliveredAt.After(t0) && !m.DeliveredAt.After(t1) {
						want = append(want, EventMessageDelivered+" "+m.ID+" "+m.DeliveredAt.Truncate(time.Second).Format(time.RFC3339))
					}
					if m.ReadAt != nil && m.ReadAt.After(t0) && !m.ReadAt.After(t1) {
						want = append(want, EventMessageRead+" "+m.ID+" "+m.ReadAt.Truncate(time.Second).Format(time.RFC3339))
					}
				}
				var prev time.Time
				for _, ev := range events(t, WebhookEnvelope, r.got()[mark:]) {
					if ev.name != EventMessageDelivered && ev.name != EventMessageRead {
						continue
					}
					if ev.at.Before(prev) {
						t.Fatalf("events out of time order: %v after %v", ev.at, prev)
					}
					prev = ev.at
					if st := strings.TrimPrefix(ev.name, "message."); ev.data["status"] != st {
						t.Fatalf("%s with status %v", ev.name, ev.data["status"])
					}
					total[ev.name]++
					got = append(got, ev.name+" "+ev.data["id"].(string)+" "+ev.at.Format(time.RFC3339))
				}
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("advance %v: %d status events, %d status changes:\n got %v\nwant %v", d, len(got), len(want), got, want)
				}
			}
			if total[EventMessageDelivered] < 10 || total[EventMessageRead] < 10 {
				t.Fatalf("too few status events to mean much: %v", total)
			}
		})
	}
}

// TestWebhookConversationEvents: conversation.created (and sometimes an
// ignorable ticket.created) for conversations started at run time;
// conversation.resolved exactly when a conversation becomes resolved.
func TestWebhookConversationEvents(t *testing.T) {
	e, r := hookEnv(t, Options{Seed: 24, Conversations: 30, MeanMessages: 5, WebhookConversationID: true})
	var added []string
	for range 24 {
		added = append(added, e.sim.AddConversation())
	}
	idle(t, e.sim)
	evs := events(t, WebhookDocumented, r.got())
	var created []string
	tickets := 0
	for i, ev := range evs {
		switch ev.name {
		case EventConversationCreated:
			created = append(created, ev.data["id"].(string))
			if ev.data["conversation_id"] != ev.data["id"] || !convTimeRe.MatchString(ev.data["created_at"].(string)) {
				t.Fatalf("conversation.created %v", ev.data)
			}
			if evs[len(evs)-1].name == EventConversationCreated {
				t.Fatal("no message after the last conversation.created")
			}
		case EventTicketCreated:
			tickets++
			if prev := evs[i-1]; prev.name != EventConversationCreated || ev.data["conversation_id"] != prev.data["id"] {
				t.Fatalf("ticket.created %v after %s", ev.data, prev.name)
			}
		case EventMessageReceived:
			if prev := evs[i-1]; prev.name != EventConversationCreated && prev.name != EventTicketCreated {
				t.Fatalf("message.received after %s", prev.name)
			}
		default:
			t.Fatalf("unexpected %s", ev.name)
		}
	}
	if !slices.Equal(created, added) || tickets == 0 || tickets == len(added) {
		t.Fatalf("created %v for %v, %d tickets", created, added, tickets)
	}

	resolvedEvents := 0
	for step := range 12 {
		if step == 5 { // reopen what is resolved: it may resolve again
			for _, c := range e.sim.ConversationTruth() {
				if c.StageStatus == StageResolved {
					e.sim.AddMessages(c.ID, 1)
				}
			}
		}
		idle(t, e.sim)
		mark := len(r.got())
		t0 := e.sim.Now()
		e.sim.Advance(6 * time.Hour)
		t1 := e.sim.Now()
		idle(t, e.sim)
		var want, got []string
		for _, c := range e.sim.ConversationTruth() {
			if c.ResolvedAt != nil && c.ResolvedAt.After(t0) && !c.ResolvedAt.After(t1) {
				want = append(want, c.ID+" "+formatConvTime(*c.ResolvedAt))
			}
		}
		for _, ev := range events(t, WebhookDocumented, r.got()[mark:]) {
			if ev.name == EventConversationResolved {
				got = append(got, ev.data["id"].(string)+" "+ev.data["resolved_at"].(string))
				if ev.data["resolved_by_name"] == "" || ev.data["resolved_by_id"] == "" {
					t.Fatalf("resolved %v", ev.data)
				}
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d:\n got %v\nwant %v", step, got, want)
		}
		resolvedEvents += len(got)
	}
	if resolvedEvents < 5 {
		t.Fatalf("%d conversation.resolved events", resolvedEvents)
	}
}

// produce makes n message events.
func produce(e *env, n int) {
	ids := e.sim.ConversationIDs()
	for i := 0; i < n; i += 5 {
		e.sim.AddMessages(ids[i/5%len(ids)], min(5, n-i))
	}
}

// TestWebhookFaults: each fault alone does what it says and is counted; all
// together keep the books balanced against what the receiver saw.
func TestWebhookFaults(t *testing.T) {
	const n = 40
	rejectBad := func(h hookReq, _ int) int {
		if !h.valid {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	}
	base := Options{Seed: 25, Conversations: 8, MeanMessages: 3, WebhookRetryBackoff: time.Millisecond}

	t.Run("loss", func(t *testing.T) {
		o := base
		o.WebhookLoss = 1
		e, r := hookEnv(t, o)
		produce(e, n)
		idle(t, e.sim)
		if c := e.sim.WebhookCounts(); len(r.got()) != 0 || c.Lost != n || c.Events != n || c.Delivered != 0 {
			t.Fatalf("%d received, %+v", len(r.got()), c)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		o := base
		o.WebhookDuplicate = 1
		e, r := hookEnv(t, o)
		produce(e, n)
		idle(t, e.sim)
		c := e.sim.WebhookCounts()
		if len(r.got()) != 2*n || c.Duplicated != n || c.Delivered != 2*n || len(r.bodies) != n {
			t.Fatalf("%d received (%d distinct), %+v", len(r.got()), len(r.bodies), c)
		}
		for b, k := range r.bodies {
			if k != 2 {
				t.Fatalf("%s received %d times", b, k)
			}
		}
	})
	t.Run("reorder", func(t *testing.T) {
		o := base
		o.WebhookReorder = 1
		e, r := hookEnv(t, o)
		produce(e, n)
		idle(t, e.sim)
		c := e.sim.WebhookCounts()
		got, want := idsInOrder(events(t, WebhookDocumented, r.got())), liveMessageIDs(e)
		if len(got) != n || c.Reordered == 0 || c.Delivered != n || !sameSet(got, want) {
			t.Fatalf("%d received, %+v", len(got), c)
		}
		moved := 0 // each reordering swaps an event with the next one
		for i := range got {
			if got[i] != want[i] {
				moved++
			}
		}
		if moved != 2*c.Reordered {
			t.Fatalf("%d events out of place, %d reordered:\n got %v\nwant %v", moved, c.Reordered, got, want)
		}
	})
	t.Run("delay", func(t *testing.T) {
		o := base
		o.WebhookDelay = 20 * time.Millisecond
		e, r := hookEnv(t, o)
		produce(e, n)
		idle(t, e.sim)
		c := e.sim.WebhookCounts()
		if len(r.got()) != n || c.Delayed == 0 || c.Delayed > n || c.Delivered != n || c.Pending != 0 {
			t.Fatalf("%d received, %+v", len(r.got()), c)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		o := base
		o.WebhookBadSignature, o.WebhookRetries = 1, -1
		e, r := hookEnv(t, o)
		r.answer = rejectBad
		produce(e, n)
		idle(t, e.sim)
		c := e.sim.WebhookCounts()
		for _, h := range r.got() {
			if h.valid || h.sig == "" {
				t.Fatalf("a copy meant to be badly signed verifies: %q", h.sig)
			}
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h.sig) {
				t.Fatalf("a bad signature is not even well-formed: %q", h.sig)
			}
		}
		if len(r.got()) != n || c.BadSignature != n || c.Failed != n || c.Delivered != 0 || c.Retries != 0 {
			t.Fatalf("%d received, %+v", len(r.got()), c)
		}
	})
	t.Run("all together", func(t *testing.T) {
		o := base
		o.WebhookLoss, o.WebhookDuplicate, o.WebhookReorder, o.WebhookBadSignature = 0.2, 0.2, 0.2, 0.2
		o.WebhookDelay, o.WebhookRetries = 3*time.Millisecond, 1
		o.WebhookSignatureEncoding = SignatureSHA256Base64
		e, r := hookEnv(t, o)
		r.answer = rejectBad
		const many = 150
		produce(e, many)
		idle(t, e.sim)
		c := e.sim.WebhookCounts()
		got := r.got()
		valid, invalid := 0, 0
		distinct := map[string]bool{}
		for _, h := range got {
			distinct[string(h.body)] = true
			if h.valid {
				valid++
			} else {
				invalid++
			}
		}
		if c.Events != many || c.Lost == 0 || c.Duplicated == 0 || c.Reordered == 0 || c.BadSignature == 0 || c.Delayed == 0 {
			t.Fatalf("a fault never happened: %+v", c)
		}
		if c.Events-c.Lost+c.Duplicated != c.Delivered+c.Failed+c.Abandoned || c.Pending != 0 || c.Abandoned != 0 {
			t.Fatalf("books do not balance: %+v", c)
		}
		if valid != c.Delivered || invalid != c.BadSignature*2 || c.Failed != c.BadSignature || len(got) != c.Attempts || c.Retries != c.BadSignature {
			t.Fatalf("%d valid and %d invalid requests, counts %+v", valid, invalid, c)
		}
		if len(distinct) != c.Events-c.Lost {
			t.Fatalf("%d distinct events arrived, %d produced, %d lost", len(distinct), c.Events, c.Lost)
		}
	})
}

func idsInOrder(evs []event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.data["id"].(string))
	}
	return out
}

// liveMessageIDs lists the live messages, conversation by conversation in
// creation order: the order produce appends them in, as long as it gives
// each conversation at most one batch.
func liveMessageIDs(e *env) []string {
	var out []string
	e.sim.mu.RLock()
	defer e.sim.mu.RUnlock()
	for _, c := range e.sim.convs {
		for p := c.gen; p < c.gen+len(c.extras); p++ {
			out = append(out, e.sim.messageID(c.idx, p))
		}
	}
	return out
}

// TestWebhookRetries: a copy answered 5xx is tried again until it gets a
// 2xx, or given up after WebhookRetries more attempts, as is one whose
// receiver cannot be reached.
func TestWebhookRetries(t *testing.T) {
	const n = 10
	o := Options{Seed: 26, Conversations: 3, MeanMessages: 2, WebhookRetryBackoff: time.Millisecond}
	e, r := hookEnv(t, o)
	r.answer = func(_ hookReq, k int) int {
		if k <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	}
	produce(e, n)
	idle(t, e.sim)
	if c := e.sim.WebhookCounts(); c.Delivered != n || c.Retries != 2*n || c.Attempts != 3*n || c.Failed != 0 {
		t.Fatalf("two failures then 202: %+v", c)
	}

	o.WebhookRetries = 2
	e, r = hookEnv(t, o)
	r.answer = func(hookReq, int) int { return http.StatusServiceUnavailable }
	produce(e, n)
	idle(t, e.sim)
	if c := e.sim.WebhookCounts(); c.Delivered != 0 || c.Failed != n || c.Attempts != 3*n || len(r.got()) != 3*n {
		t.Fatalf("always 503: %+v", c)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	o.WebhookURL, o.WebhookRetries = dead.URL, -1
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddMessages(s.ConversationIDs()[0], 3)
	idle(t, s)
	if c := s.WebhookCounts(); c.Failed != 3 || c.Attempts != 3 || c.Retries != 0 {
		t.Fatalf("unreachable receiver, no retries: %+v", c)
	}
}

// TestWebhooksCloseAndIdle: Close abandons what is not delivered and stops
// events; WebhooksIdle and Close work without webhooks too.
func TestWebhooksCloseAndIdle(t *testing.T) {
	e, r := hookEnv(t, Options{Seed: 27, Conversations: 3, MeanMessages: 2, WebhookDelay: time.Hour})
	e.sim.AddMessages(e.sim.ConversationIDs()[0], 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.sim.WebhooksIdle(ctx); err == nil {
		t.Fatal("WebhooksIdle returned nil with copies delayed by an hour")
	}
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}
	c := e.sim.WebhookCounts()
	if c.Events != 5 || c.Abandoned != 5 || c.Pending != 0 || len(r.got()) != 0 {
		t.Fatalf("after Close: %d received, %+v", len(r.got()), c)
	}
	idle(t, e.sim)
	e.sim.AddMessages(e.sim.ConversationIDs()[0], 5)
	e.sim.Advance(48 * time.Hour)
	if c2 := e.sim.WebhookCounts(); c2.Events != 5 {
		t.Fatalf("events after Close: %+v", c2)
	}
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}

	plain, _ := New(Options{Seed: 1, Conversations: 2})
	if plain.WebhooksIdle(context.Background()) != nil || plain.Close() != nil || plain.WebhookCounts().Events != 0 {
		t.Fatal("a simulator without webhooks")
	}
}

// TestWebhookEnvelope: the envelope's id is unique per event and its time
// stamp is Unix seconds.
func TestWebhookEnvelope(t *testing.T) {
	e, r := hookEnv(t, Options{Seed: 28, Conversations: 4, MeanMessages: 2, WebhookShape: WebhookEnvelope, WebhookDuplicate: 1})
	e.sim.Advance(90 * time.Minute)
	e.sim.AddMessages(e.sim.ConversationIDs()[0], 6)
	e.sim.AddConversation()
	idle(t, e.sim)
	copies := map[string]int{}
	for _, ev := range events(t, WebhookEnvelope, r.got()) {
		copies[ev.id]++
		if ev.at.Before(DefaultStart) || ev.at.After(e.sim.Now()) {
			t.Fatalf("event at %v, clock %v", ev.at, e.sim.Now())
		}
	}
	c := e.sim.WebhookCounts()
	if len(copies) != c.Events {
		t.Fatalf("%d distinct ids for %d events", len(copies), c.Events)
	}
	for id, k := range copies {
		if k != 2 { // a duplicate keeps its id, so receivers can drop it
			t.Fatalf("%s arrived %d times", id, k)
		}
	}
	var counts WebhookCounts
	if err := json.Unmarshal(e.get("/_sim/webhooks").body, &counts); err != nil || counts.Events != c.Events || counts.ByEvent[EventMessageReceived]+counts.ByEvent[EventMessageSent] < 6 {
		t.Fatalf("/_sim/webhooks: %+v, %v", counts, err)
	}
}

func TestWebhookOptions(t *testing.T) {
	for _, o := range []Options{
		{WebhookURL: "ftp://example.com/x"},
		{WebhookURL: "not a url"},
		{WebhookSignatureEncoding: "sha1"},
		{WebhookShape: "classic"},
		{WebhookLoss: 1.5},
		{WebhookBadSignature: -0.5},
		{WebhookDelay: -time.Second},
		{WebhookRetryBackoff: -time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	s, err := New(Options{WebhookURL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.opts
	if o.WebhookSecret != DefaultWebhookSecret || o.WebhookSignatureHeader != "X-Cekat-Signature" || o.WebhookSignatureEncoding != SignatureHex ||
		o.WebhookShape != WebhookDocumented || o.WebhookRetries != 3 || o.WebhookRetryBackoff != 100*time.Millisecond || o.WebhookConversationID {
		t.Fatalf("defaults %+v", o)
	}
}
