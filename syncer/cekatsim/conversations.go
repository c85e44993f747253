package cekatsim

// The New Open API's conversation list, GET /api/conversations, read from the
// field notes ("Discovering conversations: the New Open API"):
//
//	GET /api/conversations?limit=&inbox_id=&stage_status=&cursor_id=&cursor_ts=
//	{"success":true,"data":[item...],"metadata":{"next_cursor":{"cursor_id":"...","cursor_ts":"2026-04-10T09:51:19.885"}}}
//
// Authentication, rate limits, latency and faults are those of the messages
// API (Server.api, Options.Auth); requests are counted under
// EndpointConversations.
//
// Query: limit (default DefaultConversationLimit; above MaxConversationLimit
// it is clamped to it, below 1 or not a number is a 400), inbox_id (either id
// of an inbox; an unknown one lists nothing), stage_status (assigned,
// resolved or pending; anything else is a 400), and cursor_id with cursor_ts,
// both from the previous answer's metadata.next_cursor, passed back verbatim
// (one without the other, a cursor_id this server did not make, or a cursor_ts
// that is not the one issued with it is a 400).
//
// metadata.next_cursor is null on the last page (it is always present), and
// an object on every other page; a page is the last when nothing of the walk
// is left after it, so a walk does not end on an empty page unless the list
// is empty or everything left was deleted in the meantime. Before each
// request, Options.LiveRate may add 1..3 messages to a random conversation
// and Options.LiveNewConversationRate may start a conversation.
//
// Order (Options.ConversationOrder; upstream does not document one):
// OrderActivity (the default) is the newest last message first, a
// conversation without messages counting its created_at; OrderCreated is the
// newest created_at first; OrderID is by id, ascending, as byte strings. Ties
// of time are broken by id, ascending.
//
// What a walk is guaranteed: the first page (no cursor) takes a snapshot of
// the list, and every later page of the walk continues in that snapshot's
// order (the cursor carries it: cursor_id is an opaque UUID encoding the
// snapshot and the last item, not a conversation id; cursor_ts is the last
// item's sort time in the snapshot, UTC, milliseconds, no zone). So live
// traffic during a walk reorders nothing: every conversation that existed
// when the first page was served, still exists (not deleted) when its page
// is served, and matches the filters throughout, is listed exactly once, and
// no conversation is ever listed twice. Conversations created after the first
// page are not part of the walk (the next walk lists them). A stage_status
// filter is applied to the stage at the time each page is served, so a
// conversation whose stage changes during the walk may be missed or listed
// late, never twice. Items themselves are current: last_message, stage and
// resolved_at are what they are when the page is served, so an item's
// last_message may be newer than its place in the order.
//
// Items: id (the messages API's conversation id), inbox_id, contact_id,
// contact_name, contact_phone (digits, no +), platform_type (whatsapp for
// about 85%, else livechat, messenger or instagram; always whatsapp for a
// conversation started by a send), inbox_name, stage_status, handled_by_id
// and handled_by_name (null while pending), notes (null or a text), labels
// ([{id, name}], often empty), last_message {message, created_at} (the newest
// message; null when there is none), first_message {message} (null when none),
// additional_data ({} or a few keys), created_at, resolved_at, resolved_by_id
// and resolved_by_name (null unless resolved). Times look like
// 2026-04-10T09:24:23.237+00:00 (UTC, milliseconds). `message` is the text,
// or the caption of a media message ("" when it has none). Ids of inboxes and
// agents follow Options.Shape (inbox_... and agent_... or UUIDs).
//
// Stages: a conversation is pending until an agent is assigned (30 s to 2 h
// after it was created; 10% never are), then assigned, then resolved 10
// minutes to 2 days after its last message for 75% of its last messages; a
// new message reopens a resolved conversation (assigned again).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EndpointConversations is the Counts name of GET /api/conversations.
const EndpointConversations = "conversations"

// ConversationOrder is the order of GET /api/conversations.
type ConversationOrder string

const (
	OrderActivity ConversationOrder = "activity" // newest last message first (default)
	OrderCreated  ConversationOrder = "created"  // newest created_at first
	OrderID       ConversationOrder = "id"       // by id, ascending
)

// Limits of GET /api/conversations.
const (
	DefaultConversationLimit = 10
	MaxConversationLimit     = 100
)

// Stage statuses.
const (
	StagePending  = "pending"
	StageAssigned = "assigned"
	StageResolved = "resolved"
)

// Hash salts of the conversation list, apart from gen.go's and oddities.go's.
const (
	saltConvAssign   uint64 = 0xc0a7_0001
	saltConvResolve  uint64 = 0xc0a7_0002
	saltConvPlatform uint64 = 0xc0a7_0003
	saltConvNotes    uint64 = 0xc0a7_0004
	saltConvLabels   uint64 = 0xc0a7_0005
	saltConvData     uint64 = 0xc0a7_0006
	saltTicket       uint64 = 0xc0a7_0007
	cursorTweak      uint64 = 0x6375_7273_6f72_2121
)

// convMeta is what the conversation list keeps of a conversation; guarded by
// Server.mu like the rest of convo's mutable fields.
type convMeta struct {
	created    time.Time // created_at
	createdSeq uint64    // Server.seq when it was registered
	genLast    time.Time // time stamp of the newest generated message (gen > 0)
}

var (
	convNotes  = []string{"Pelanggan VIP", "Minta dihubungi sore hari", "Komplain pengiriman, sudah eskalasi", "Follow up invoice", "Customer prefers English"}
	convLabels = []string{"VIP", "Komplain", "Order", "Refund", "Lead", "Reseller"}
	timeMilli  = "2006-01-02T15:04:05.000"
)

func (o *Options) normalizeDiscovery() error {
	switch o.ConversationOrder {
	case "":
		o.ConversationOrder = OrderActivity
	case OrderActivity, OrderCreated, OrderID:
	default:
		return errorf("unknown conversation order %q (want activity, created or id)", o.ConversationOrder)
	}
	if p := o.LiveNewConversationRate; p < 0 || p > 1 || p != p {
		return errorf("LiveNewConversationRate must be within [0, 1], got %v", p)
	}
	return o.normalizeWebhooks()
}

// registeredLocked notes a new conversation: s.mu is held (or New runs).
func (s *Server) registeredLocked(c *convo) {
	s.seq++
	c.meta.createdSeq = s.seq
	c.meta.created = s.clock
	if c.gen > 0 {
		c.meta.created = s.genTime(c, 0, 0)
		c.meta.genLast = s.genTime(c, c.gen-1, s.offset(c, c.gen-1))
	}
	if s.hooks != nil && !s.hooks.stopped.Load() {
		s.conversationCreatedLocked(c)
	}
}

// startDiscovery ends New: generated conversations without messages were
// created when their (empty) history ends, before the clock starts; then the
// webhook sender starts.
func (s *Server) startDiscovery() {
	for _, c := range s.convs {
		if c.gen == 0 {
			c.meta.created = time.Unix(c.lastSec, 0).UTC()
		}
	}
	if s.opts.WebhookURL != "" {
		s.startWebhooks()
	}
}

// AddConversation starts a new conversation at the current simulated time:
// a new customer in one of the inboxes writes a first (inbound) message. It
// returns the conversation's id, which ConversationIDs, the messages API and
// the conversation list know from then on ("" when no more conversations fit).
func (s *Server) AddConversation() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.convs) >= 1<<convBits-1 {
		return ""
	}
	c := s.newConvo(len(s.convs), 0, "", nil)
	s.register(c)
	s.appendLocked(c, nil)
	return c.id
}

// lastLocked is the time stamp and position of the newest message of c among
// those appended up to sequence number snap (every generated message is in
// every snapshot); ok is false when there is none. s.mu is held.
func lastLocked(c *convo, extras []extra, snap uint64) (t time.Time, pos int, ok bool) {
	k := sort.Search(len(extras), func(i int) bool { return extras[i].seq > snap })
	if k > 0 {
		return time.Unix(extras[k-1].sec, 0).UTC(), c.gen + k - 1, true
	}
	if c.gen > 0 {
		return c.meta.genLast, c.gen - 1, true
	}
	return time.Time{}, -1, false
}

// stage is a conversation's stage at some time.
type stage struct {
	status     string
	agent      *agent     // handling it; nil while pending
	resolvedAt *time.Time // when resolved
}

// assignedAt is when an agent takes c; ok is false for the 10% never taken.
func (s *Server) assignedAt(c *convo) (time.Time, bool) {
	h := s.hash3(c.idx, -4, saltConvAssign)
	if h%100 < 10 {
		return time.Time{}, false
	}
	return c.meta.created.Add(logUniform(mix(h), 30*time.Second, 2*time.Hour)), true
}

// resolution is when c is resolved if its newest message is at lastPos, sent
// at lastAt; ok is false when that message leaves it open.
func (s *Server) resolution(c *convo, lastPos int, lastAt time.Time) (time.Time, bool) {
	assigned, ok := s.assignedAt(c)
	if !ok {
		return time.Time{}, false
	}
	h := s.hash3(c.idx, lastPos, saltConvResolve)
	if h%100 >= 75 {
		return time.Time{}, false
	}
	from := lastAt
	if assigned.After(from) {
		from = assigned
	}
	return from.Add(logUniform(mix(h), 10*time.Minute, 48*time.Hour) + fraction(h>>7, 3)), true
}

// logUniform maps a hash to a duration between lo and hi, log-uniformly, in
// whole seconds.
func logUniform(h uint64, lo, hi time.Duration) time.Duration {
	l, u := math.Log(lo.Seconds()), math.Log(hi.Seconds())
	return time.Duration(math.Round(math.Exp(l+unit(h)*(u-l)))) * time.Second
}

// stageOf is the stage of c at now, n messages in, the newest sent at lastAt.
func (s *Server) stageOf(c *convo, n int, lastAt, now time.Time) stage {
	at, ok := s.assignedAt(c)
	if !ok || at.After(now) {
		return stage{status: StagePending}
	}
	st := stage{status: StageAssigned, agent: s.agents[c.agent]}
	if n == 0 {
		return st
	}
	if res, ok := s.resolution(c, n-1, lastAt); ok && !res.After(now) {
		st.status, st.resolvedAt = StageResolved, &res
	}
	return st
}

// platform is c's platform_type: a conversation started by a send is a
// WhatsApp one; otherwise mostly whatsapp.
func (s *Server) platform(c *convo, extras []extra) string {
	if c.gen == 0 && len(extras) > 0 && extras[0].sent != nil {
		return "whatsapp"
	}
	switch u := s.hash3(c.idx, -4, saltConvPlatform) % 100; {
	case u < 85:
		return "whatsapp"
	case u < 92:
		return "livechat"
	case u < 96:
		return "messenger"
	}
	return "instagram"
}

func (s *Server) shapeID(docID, realID string) string {
	if s.opts.Shape == ShapeReal {
		return realID
	}
	return docID
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("cekatsim: "+format, args...)
}

func formatConvTime(t time.Time) string { return t.UTC().Format(timeMilli) + "+00:00" }

// Items of the list.

type convLabel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type convLastMessage struct {
	Message   string `json:"message"`
	CreatedAt string `json:"created_at"`
}

type convFirstMessage struct {
	Message string `json:"message"`
}

type convItem struct {
	ID             string            `json:"id"`
	InboxID        string            `json:"inbox_id"`
	ContactID      string            `json:"contact_id"`
	ContactName    string            `json:"contact_name"`
	ContactPhone   string            `json:"contact_phone"`
	PlatformType   string            `json:"platform_type"`
	InboxName      string            `json:"inbox_name"`
	StageStatus    string            `json:"stage_status"`
	HandledByID    *string           `json:"handled_by_id"`
	HandledByName  *string           `json:"handled_by_name"`
	Notes          *string           `json:"notes"`
	Labels         []convLabel       `json:"labels"`
	LastMessage    *convLastMessage  `json:"last_message"`
	FirstMessage   *convFirstMessage `json:"first_message"`
	AdditionalData map[string]any    `json:"additional_data"`
	CreatedAt      string            `json:"created_at"`
	ResolvedAt     *string           `json:"resolved_at"`
	ResolvedByID   *string           `json:"resolved_by_id"`
	ResolvedByName *string           `json:"resolved_by_name"`
}

// currentLocked is a view of c now; s.mu is held.
func (s *Server) currentLocked(c *convo) view {
	return view{c: c, n: c.gen + len(c.extras), extras: c.extras, now: s.clock}
}

// lastOf is the newest message's time stamp in a view.
func lastOf(v view) time.Time {
	t, _, _ := lastLocked(v.c, v.extras[:v.n-v.c.gen], math.MaxUint64)
	return t
}

func (s *Server) convItem(v view) convItem {
	c := v.c
	h := func(salt uint64) uint64 { return s.hash3(c.idx, -4, salt) }
	it := convItem{
		ID:             c.id,
		InboxID:        s.shapeID(c.inbox.docID, c.inbox.realID),
		ContactID:      c.contactID,
		ContactName:    c.custName,
		ContactPhone:   strings.TrimPrefix(c.phone, "+"),
		PlatformType:   s.platform(c, v.extras),
		InboxName:      c.inbox.name,
		Labels:         []convLabel{},
		AdditionalData: map[string]any{},
		CreatedAt:      formatConvTime(c.meta.created),
	}
	st := s.stageOf(c, v.n, lastOf(v), v.now)
	it.StageStatus = st.status
	if st.agent != nil {
		id, name := s.shapeID(st.agent.docID, st.agent.realID), st.agent.name
		it.HandledByID, it.HandledByName = &id, &name
		if st.resolvedAt != nil {
			at := formatConvTime(*st.resolvedAt)
			it.ResolvedAt, it.ResolvedByID, it.ResolvedByName = &at, &id, &name
		}
	}
	if x := h(saltConvNotes); x%10 < 3 {
		note := pick(x>>8, convNotes)
		it.Notes = &note
	}
	for x, k := h(saltConvLabels), 0; k < int(x%5)-2; k++ { // 0 to 2 labels, none for 3 in 5
		i := int(mix(x+uint64(k)) % uint64(len(convLabels)))
		if !slices.ContainsFunc(it.Labels, func(l convLabel) bool { return l.Name == convLabels[i] }) {
			it.Labels = append(it.Labels, convLabel{ID: hashUUID(s.hash3(-20, i, 1), s.hash3(-20, i, 2)), Name: convLabels[i]})
		}
	}
	switch x := h(saltConvData); {
	case it.PlatformType == "livechat":
		it.AdditionalData["page_url"] = "https://toko.example.id/produk/" + hexN(x, 6)
	case x%5 == 0:
		it.AdditionalData["source"] = "whatsapp_cloud"
		it.AdditionalData["utm_campaign"] = pick(x>>8, []string{"ramadan_sale", "ongkir_gratis", "ig_ads"})
	}
	if v.n > 0 {
		first, last := s.messageAt(v, 0), s.messageAt(v, v.n-1)
		it.FirstMessage = &convFirstMessage{Message: realMessage(first)}
		it.LastMessage = &convLastMessage{Message: realMessage(last), CreatedAt: formatConvTime(last.ts)}
	}
	return it
}

// listKey is a conversation's place in the list's order.
type listKey struct {
	t  time.Time
	id string
}

func (s *Server) precedes(a, b listKey) bool {
	if s.opts.ConversationOrder != OrderID && !a.t.Equal(b.t) {
		return a.t.After(b.t)
	}
	return a.id < b.id
}

// keyLocked is c's place in the order of snapshot snap; s.mu is held.
func (s *Server) keyLocked(c *convo, snap uint64) listKey {
	k := listKey{t: c.meta.created, id: c.id}
	if s.opts.ConversationOrder == OrderActivity {
		if t, _, ok := lastLocked(c, c.extras, snap); ok {
			k.t = t
		}
	}
	return k
}

// cursorID encodes a snapshot and the index of the last conversation listed
// as a UUID (checked like a message id: an altered one is refused).
func (s *Server) cursorID(snap uint64, idx int) string {
	return s.cipherUUID(s.permute((snap<<convBits | uint64(idx)) ^ cursorTweak))
}

func (s *Server) decodeCursorID(id string) (snap uint64, idx int, ok bool) {
	b, ok := parseUUID(id)
	if !ok {
		return 0, 0, false
	}
	var c uint64
	for i := 0; i < 6; i++ {
		c |= uint64(b[i]) << (56 - 8*i)
	}
	c |= uint64(b[7])<<8 | uint64(b[9])
	if s.cipherUUID(c) != id {
		return 0, 0, false
	}
	v := s.unpermute(c) ^ cursorTweak
	return v >> convBits, int(v & (1<<convBits - 1)), true
}

type nextCursor struct {
	CursorID string `json:"cursor_id"`
	CursorTS string `json:"cursor_ts"`
}

var validStages = map[string]bool{StagePending: true, StageAssigned: true, StageResolved: true}

func (s *Server) handleConversations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultConversationLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 {
			s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "limit must be a positive integer", validation("limit", "must be a positive integer"))
			return
		}
		limit = min(n, MaxConversationLimit)
	}
	stageFilter, inboxFilter := q.Get("stage_status"), q.Get("inbox_id")
	if stageFilter != "" && !validStages[stageFilter] {
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "stage_status must be assigned, resolved or pending", validation("stage_status", "must be assigned, resolved or pending"))
		return
	}
	curID, curTS := q.Get("cursor_id"), q.Get("cursor_ts")
	if (curID == "") != (curTS == "") {
		s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "cursor_id and cursor_ts go together", validation("cursor_id", "cursor_id and cursor_ts go together"))
		return
	}
	s.liveConversationTraffic()

	s.mu.RLock()
	snap := s.seq
	var after *listKey
	if curID != "" {
		sn, idx, ok := s.decodeCursorID(curID)
		if ok && (sn > s.seq || idx >= len(s.convs) || s.convs[idx].meta.createdSeq > sn) {
			ok = false
		}
		var k listKey
		if ok {
			k = s.keyLocked(s.convs[idx], sn)
		}
		if !ok || k.t.UTC().Format(timeMilli) != curTS {
			s.mu.RUnlock()
			field := "cursor_id"
			if ok {
				field = "cursor_ts"
			}
			s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "invalid cursor", validation(field, "is not the cursor given by a previous page"))
			return
		}
		snap, after = sn, &k
	}
	type cand struct {
		key listKey
		v   view
	}
	var cands []cand
	for _, c := range s.convs {
		if c.deleted || c.meta.createdSeq > snap {
			continue
		}
		if inboxFilter != "" && inboxFilter != c.inbox.docID && inboxFilter != c.inbox.realID {
			continue
		}
		k := s.keyLocked(c, snap)
		if after != nil && !s.precedes(*after, k) {
			continue
		}
		v := s.currentLocked(c)
		if stageFilter != "" && s.stageOf(c, v.n, lastOf(v), v.now).status != stageFilter {
			continue
		}
		cands = append(cands, cand{k, v})
	}
	s.mu.RUnlock()

	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case s.precedes(a.key, b.key):
			return -1
		case s.precedes(b.key, a.key):
			return 1
		}
		return 0
	})
	var next *nextCursor
	if len(cands) > limit {
		cands = cands[:limit]
		last := cands[limit-1]
		next = &nextCursor{CursorID: s.cursorID(snap, last.v.c.idx), CursorTS: last.key.t.UTC().Format(timeMilli)}
	}
	var buf bytes.Buffer
	buf.WriteString(`{"success":true,"data":[`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, cd := range cands {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := enc.Encode(s.convItem(cd.v)); err != nil {
			s.writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error(), nil)
			return
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString(`],"metadata":{"next_cursor":`)
	b, _ := json.Marshal(next)
	buf.Write(b)
	buf.WriteString("}}\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// liveConversationTraffic is what may happen before a conversation list
// request: with probability LiveRate 1..3 messages arrive in a random live
// conversation, and with probability LiveNewConversationRate a new
// conversation starts.
func (s *Server) liveConversationTraffic() {
	if s.opts.LiveRate > 0 && s.draw() < s.opts.LiveRate {
		s.mu.RLock()
		n := len(s.convs)
		s.mu.RUnlock()
		if n > 0 {
			i, k := s.drawN(n), 1+s.drawN(3)
			s.mu.RLock()
			id := s.convs[i].id // conversations are only ever appended
			s.mu.RUnlock()
			s.addMessages(id, k) // ignores a deleted one
		}
	}
	if s.opts.LiveNewConversationRate > 0 && s.draw() < s.opts.LiveNewConversationRate {
		s.AddConversation()
	}
}

// TruthConversation is the ground truth of a conversation as the conversation
// list shows it now.
type TruthConversation struct {
	ID           string    `json:"id"`
	InboxID      string    `json:"inbox_id"` // in Options.Shape's form, as served
	PlatformType string    `json:"platform_type"`
	ContactPhone string    `json:"contact_phone"` // digits, as served
	StageStatus  string    `json:"stage_status"`
	CreatedAt    time.Time `json:"created_at"`
	Messages     int       `json:"messages"`
	// LastMessageID and LastMessageAt name the newest message (absent when
	// there is none); LastMessageAt is exact, the list serves it to the
	// millisecond.
	LastMessageID string     `json:"last_message_id,omitempty"`
	LastMessageAt *time.Time `json:"last_message_at,omitempty"`
	ResolvedAt    *time.Time `json:"resolved_at,omitempty"`
}

// ConversationTruth lists the live (not deleted) conversations in creation
// order, as the conversation list describes them at the current simulated
// time.
func (s *Server) ConversationTruth() []TruthConversation {
	s.mu.RLock()
	views := make([]view, 0, len(s.convs))
	for _, c := range s.convs {
		if !c.deleted {
			views = append(views, s.currentLocked(c))
		}
	}
	s.mu.RUnlock()
	out := make([]TruthConversation, 0, len(views))
	for _, v := range views {
		c := v.c
		t := TruthConversation{
			ID:           c.id,
			InboxID:      s.shapeID(c.inbox.docID, c.inbox.realID),
			PlatformType: s.platform(c, v.extras),
			ContactPhone: strings.TrimPrefix(c.phone, "+"),
			CreatedAt:    c.meta.created,
			Messages:     v.n,
		}
		if v.n > 0 {
			at := lastOf(v)
			t.LastMessageID, t.LastMessageAt = s.messageID(c.idx, v.n-1), &at
		}
		st := s.stageOf(c, v.n, lastOf(v), v.now)
		t.StageStatus, t.ResolvedAt = st.status, st.resolvedAt
		out = append(out, t)
	}
	return out
}

func (s *Server) discoveryRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/conversations", s.api(EndpointConversations, s.apiAuthorized, s.handleConversations))
	mux.Handle("GET /api/messages", s.api(EndpointInbox, s.apiAuthorized, s.handleInbox))
	mux.HandleFunc("GET /_sim/conversations", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.ConversationTruth())
	})
	mux.HandleFunc("POST /_sim/add-conversation", func(w http.ResponseWriter, r *http.Request) {
		id := s.AddConversation()
		if id == "" {
			writeJSON(w, http.StatusConflict, map[string]string{"error": "no more conversations fit"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"conversation_id": id})
	})
	mux.HandleFunc("GET /_sim/webhooks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.WebhookCounts())
	})
}
