package cekatsim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a simulated Cekat messages API. Its handlers are safe for
// concurrent use.
type Server struct {
	opts    Options
	seed    uint64
	feistel [4]uint64

	inboxes  []*inbox
	agents   []*agent
	bot      *agent
	system   *agent
	apiAgent *agent

	mu      sync.RWMutex
	convs   []*convo
	byID    map[string]*convo
	byPhone map[string]*convo // live (not deleted) conversations by customer phone
	clock   time.Time
	seq     uint64    // counts conversations registered and messages appended: the conversation list's snapshots (conversations.go)
	hooks   *webhooks // nil unless Options.WebhookURL is set (webhooks.go)

	rngMu sync.Mutex
	rng   *rand.Rand

	errSeq atomic.Uint64

	limiter limiter
	counts  counter

	cycleCut map[int]int // conversation index -> cut position, for cursor cycles; set in New

	handler    http.Handler
	backoffice http.Handler

	deletions deletionLog // the back-office delete's log and queued faults (deletions.go)
}

// New builds a simulator. It fails only on invalid options.
func New(opts Options) (*Server, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		seed:    mix(uint64(opts.Seed) ^ 0xc0ffee),
		byID:    map[string]*convo{},
		byPhone: map[string]*convo{},
		clock:   opts.Start,
		rng:     rand.New(rand.NewPCG(uint64(opts.Seed), 0xfa17)),
	}
	for i := range s.feistel {
		s.feistel[i] = mix(s.seed + uint64(i)*0x9e3779b97f4a7c15)
	}
	s.limiter = limiter{perMin: opts.RatePerMinute, perDay: opts.RatePerDay}
	s.counts.reset()
	s.newInboxes()

	counts := opts.MessageCounts
	if counts == nil {
		counts = make([]int, opts.Conversations)
		for i := range counts {
			counts[i] = s.heavyCount(i, opts.MeanMessages)
		}
	}
	if len(counts) >= 1<<convBits {
		return nil, fmt.Errorf("cekatsim: too many conversations (%d)", len(counts))
	}
	s.convs = make([]*convo, 0, len(counts))
	for i, n := range counts {
		s.register(s.newConvo(i, n, "", nil))
	}
	s.chooseCycles()
	s.startDiscovery()
	s.handler = s.routes()
	s.backoffice = s.backofficeRoutes()
	return s, nil
}

func (s *Server) register(c *convo) {
	s.convs = append(s.convs, c)
	s.byID[c.id] = c
	s.byPhone[c.phone] = c
	s.registeredLocked(c)
}

// Handler serves the messages API (GET /messages, GET /messages/{id},
// POST /messages/whatsapp), the New Open API's conversation list (GET
// /api/conversations) and the admin endpoints under /_sim/.
func (s *Server) Handler() http.Handler { return s.handler }

// BackofficeHandler serves POST /v1/backoffice/conversations-delete, which
// lives on a different host in practice.
func (s *Server) BackofficeHandler() http.Handler { return s.backoffice }

// ConversationIDs lists every conversation ever created (including deleted
// ones and ones created by sends), in creation order.
func (s *Server) ConversationIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, len(s.convs))
	for i, c := range s.convs {
		ids[i] = c.id
	}
	return ids
}

// Now is the current simulated time.
func (s *Server) Now() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clock
}

// Advance moves the simulated clock forward (negative durations are ignored).
// Statuses of outbound messages progress with it.
func (s *Server) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	s.mu.Lock()
	s.clock = s.clock.Add(d)
	s.clockMovedLocked()
	s.mu.Unlock()
}

// AddMessages appends n generated messages (live traffic) to a conversation,
// time stamped at the current simulated clock. Unknown or deleted
// conversations are ignored.
func (s *Server) AddMessages(conversationID string, n int) {
	s.addMessages(conversationID, n)
}

func (s *Server) addMessages(conversationID string, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[conversationID]
	if !ok || c.deleted || n <= 0 {
		return nil
	}
	ids := make([]string, 0, n)
	for range n {
		ids = append(ids, s.appendLocked(c, nil))
	}
	return ids
}

// appendLocked appends a message to c at the current clock; s.mu is held.
func (s *Server) appendLocked(c *convo, sent *sentMsg) string {
	sec := s.clock.Unix()
	if sec < c.lastSec {
		sec = c.lastSec
	}
	c.lastSec = sec
	pos := c.gen + len(c.extras)
	s.seq++
	c.extras = append(c.extras, extra{sec: sec, sent: sent, seq: s.seq})
	s.appendedLocked(c, pos)
	return s.messageID(c.idx, pos)
}

// view is a consistent snapshot of a conversation for rendering.
type view struct {
	c      *convo
	n      int
	extras []extra
	now    time.Time
}

func (s *Server) snapshot(c *convo) (view, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c.deleted {
		return view{}, false
	}
	return view{c: c, n: c.gen + len(c.extras), extras: c.extras, now: s.clock}, true
}

// lookupConv finds a live conversation by id.
func (s *Server) lookupConv(id string) (*convo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byID[id]
	if !ok || c.deleted {
		return nil, false
	}
	return c, true
}

// lookupMessage resolves a message id to a snapshot of its live conversation.
func (s *Server) lookupMessage(id string) (view, int, bool) {
	ci, pos, ok := s.decodeMessageID(id)
	if !ok {
		return view{}, 0, false
	}
	s.mu.RLock()
	if ci >= len(s.convs) {
		s.mu.RUnlock()
		return view{}, 0, false
	}
	c := s.convs[ci]
	s.mu.RUnlock()
	v, ok := s.snapshot(c)
	if !ok || pos >= v.n {
		return view{}, 0, false
	}
	return v, pos, true
}

// each materializes messages [a, b) of a snapshot in order.
func (s *Server) each(v view, a, b int, fn func(*msg) error) error {
	c := v.c
	var off int64
	for pos := a; pos < b; pos++ {
		var m *msg
		if pos < c.gen {
			if pos == a {
				off = s.offset(c, pos)
			} else {
				off += s.gap(c, pos)
			}
			m = s.message(c, pos, s.genTime(c, pos, off), nil, v.now)
		} else {
			ex := &v.extras[pos-c.gen]
			m = s.message(c, pos, time.Unix(ex.sec, 0).UTC(), ex, v.now)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// messageAt materializes one message of a snapshot.
func (s *Server) messageAt(v view, pos int) *msg {
	var m *msg
	_ = s.each(v, pos, pos+1, func(x *msg) error { m = x; return nil })
	return m
}

// draw returns a uniform number in [0, 1) from the seeded fault generator.
func (s *Server) draw() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *Server) drawN(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}
